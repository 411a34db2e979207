# syntax=docker/dockerfile:1
# authz-flag-consumer image: one static binary, CA certificates and a non-root user on an
# empty base. Nothing else: no shell, no libc, no package manager.
#
#   docker build -t authz-flag-consumer:dev .
#   docker run --rm authz-flag-consumer:dev --version
#
# The base images are build arguments, so a registry mirror can stand in:
#   --build-arg GO_IMAGE=mirror.example.com/library/golang:1.26-bookworm
# GO_IMAGE must be Debian-based: the image takes its CA bundle from Debian's ca-certificates.
# BINARY_FROM names the stage (or image) holding /rootfs; scripts/image-check.sh points it at
# an image made from a host-built binary where no base image can be pulled.
#
# The Helm chart and the Tutor plugin run it as `/consumer run` with a read-only root
# filesystem, user 65532, and /tmp on an emptyDir/tmpfs.
ARG GO_IMAGE=golang:1.26-bookworm
ARG RUNTIME_IMAGE=scratch
ARG BINARY_FROM=build

FROM --platform=$BUILDPLATFORM ${GO_IMAGE} AS build
ARG TARGETOS=linux
ARG TARGETARCH=amd64
ARG VERSION=dev
WORKDIR /src
# Dependencies first, so source edits reuse the module layer.
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/go/pkg/mod \
    go mod download
COPY cmd/ cmd/
COPY internal/ internal/
COPY schemas/ schemas/
RUN --mount=type=cache,target=/go/pkg/mod \
    --mount=type=cache,target=/root/.cache/go-build \
    CGO_ENABLED=0 GOOS=$TARGETOS GOARCH=$TARGETARCH \
    go build -trimpath -ldflags "-s -w -X main.version=$VERSION" -o /rootfs/consumer ./cmd/consumer
# The final image's files: the binary, the CA bundle and a passwd/group naming user 65532.
RUN mkdir -p /rootfs/etc/ssl/certs /rootfs/tmp && chmod 1777 /rootfs/tmp && \
    cp /etc/ssl/certs/ca-certificates.crt /rootfs/etc/ssl/certs/ && \
    echo 'nonroot:x:65532:65532:nonroot:/nonexistent:/sbin/nologin' >/rootfs/etc/passwd && \
    echo 'nonroot:x:65532:' >/rootfs/etc/group

FROM ${BINARY_FROM} AS binary

FROM ${RUNTIME_IMAGE}
COPY --from=binary /rootfs/ /
ENV SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt
USER 65532:65532
EXPOSE 8080
ENTRYPOINT ["/consumer"]
CMD ["run"]
