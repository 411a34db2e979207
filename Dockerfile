# syntax=docker/dockerfile:1
# authz-flag-consumer image: one static binary on distroless, running as non-root.
#
#   docker build -t authz-flag-consumer:dev .
#   docker run --rm authz-flag-consumer:dev --help
#
# The Helm chart (charts/authz-consumer) runs it as `/consumer run` with a
# read-only root filesystem, user 65532, and /tmp on an emptyDir.

FROM --platform=$BUILDPLATFORM golang:1.26 AS build
ARG TARGETOS=linux
ARG TARGETARCH=amd64
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
    go build -trimpath -ldflags "-s -w" -o /out/consumer ./cmd/consumer

# static-debian12 has CA certificates and tzdata, no shell, no libc.
FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/consumer /consumer
USER 65532:65532
EXPOSE 8080
ENTRYPOINT ["/consumer"]
CMD ["run"]
