#!/usr/bin/env bash
# Builds the container image from the repo's Dockerfile with buildah and starts its binary.
#
# These machines reach no container registry, so no base image can be pulled. The Dockerfile's
# final stage is built as it is, on the empty base (RUNTIME_IMAGE=scratch), with BINARY_FROM
# pointed at an image holding what its build stage would produce: the binary built here
# (CGO_ENABLED=0, static), the CA bundle of Debian's ca-certificates, and passwd/group for user
# 65532. A real build (docker build .) makes the same files in the golang build stage.
#
# Checks: `consumer --version`, `consumer schema create` and `schema check` on an SQLite file,
# run inside the image (buildah run --isolation chroot, as the image's user); the image config
# runs as a numeric non-root user with /consumer as entrypoint; prints the image size.
#
# Installs buildah and ca-certificates from Debian packages when missing (needs root).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
WORK="$ROOT/.cache/image-check"
IMAGE="localhost/authz-flag-consumer:check"
ROOTFS_IMAGE="localhost/authz-flag-consumer-rootfs:check"
VERSION="$(git -C "$ROOT" describe --tags --always --dirty 2>/dev/null || echo dev)"

log() { printf 'image-check: %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

if ! command -v buildah >/dev/null || ! [ -f /etc/ssl/certs/ca-certificates.crt ]; then
	log "installing buildah and ca-certificates (Debian packages)"
	[ "$(id -u)" = 0 ] || die "buildah is missing and this is not root: apt-get install buildah ca-certificates"
	apt-get update -qq >/dev/null
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq buildah ca-certificates >/dev/null
fi
B=(buildah --storage-driver vfs)

rm -rf "$WORK"
mkdir -p "$WORK/rootfs/etc/ssl/certs" "$WORK/rootfs/tmp" "$WORK/data"
log "building the static binary (version $VERSION)"
(cd "$ROOT" && CGO_ENABLED=0 GOOS=linux go build -trimpath -ldflags "-s -w -X main.version=$VERSION" \
	-o "$WORK/rootfs/consumer" ./cmd/consumer)
if ldd "$WORK/rootfs/consumer" >/dev/null 2>&1; then die "the binary is not static"; fi
cp /etc/ssl/certs/ca-certificates.crt "$WORK/rootfs/etc/ssl/certs/"
chmod 1777 "$WORK/rootfs/tmp"
echo 'nonroot:x:65532:65532:nonroot:/nonexistent:/sbin/nologin' >"$WORK/rootfs/etc/passwd"
echo 'nonroot:x:65532:' >"$WORK/rootfs/etc/group"

# The stand-in for the build stage: an image whose /rootfs holds those files.
"${B[@]}" rmi -f "$IMAGE" "$ROOTFS_IMAGE" >/dev/null 2>&1 || true
ctr="$("${B[@]}" from scratch)"
"${B[@]}" copy "$ctr" "$WORK/rootfs" /rootfs >/dev/null
"${B[@]}" commit -q "$ctr" "$ROOTFS_IMAGE" >/dev/null
"${B[@]}" rm "$ctr" >/dev/null

log "buildah bud: the Dockerfile's final stage on scratch"
"${B[@]}" bud --isolation chroot --layers=false --pull=never \
	--build-arg RUNTIME_IMAGE=scratch --build-arg BINARY_FROM="$ROOTFS_IMAGE" \
	-t "$IMAGE" -f "$ROOT/Dockerfile" "$ROOT" >"$WORK/bud.log" 2>&1 ||
	{ cat "$WORK/bud.log" >&2; die "buildah bud failed"; }

fail=0
ok() { printf 'ok    %s\n' "$*"; }
bad() { printf 'FAIL  %s\n' "$*"; fail=$((fail + 1)); }

user="$("${B[@]}" inspect --type image --format '{{.OCIv1.Config.User}}' "$IMAGE")"
entry="$("${B[@]}" inspect --type image --format '{{.OCIv1.Config.Entrypoint}} {{.OCIv1.Config.Cmd}}' "$IMAGE")"
uid="${user%%:*}"
if [[ "$uid" =~ ^[0-9]+$ ]] && [ "$uid" -ne 0 ]; then ok "image config User is $user (numeric, non-root)"; else bad "image config User is '$user'"; fi
if [ "$entry" = '[/consumer] [run]' ]; then ok "entrypoint and command: $entry"; else bad "entrypoint and command: $entry"; fi

# The SQLite file lives on a host directory the image's user may write.
chmod 0777 "$WORK/data"
ctr="$("${B[@]}" from --pull-never "$IMAGE")"
trap '"${B[@]}" rm "$ctr" >/dev/null 2>&1 || true' EXIT
run() { "${B[@]}" run --isolation chroot --user "$user" -v "$WORK/data:/data" "$ctr" -- /consumer "$@"; }

if out="$(run --version 2>&1)" && grep -q "$VERSION" <<<"$out"; then ok "consumer --version: $out"; else bad "consumer --version: $out"; fi
db="sqlite:////data/check.db"
if out="$(run schema create --database-url "$db" 2>&1)"; then ok "consumer schema create (SQLite, in the image)"; else bad "consumer schema create: $out"; fi
if out="$(run schema check --database-url "$db" 2>&1)"; then ok "consumer schema check: $(tail -n 1 <<<"$out")"; else bad "consumer schema check: $out"; fi
if out="$(run whoami-not-a-command 2>&1)"; then bad "an unknown subcommand succeeded"; else ok "an unknown subcommand fails"; fi
owner="$(stat -c %u "$WORK/data/check.db" 2>/dev/null || echo none)"
if [ "$owner" = "$uid" ]; then ok "the database file was written by uid $owner"; else bad "the database file's owner is $owner, want $uid"; fi

size="$("${B[@]}" images --format '{{.Size}}' "$IMAGE")"
bin_size="$(du -h "$WORK/rootfs/consumer" | cut -f1)"
echo "image $IMAGE: $size (binary $bin_size, static)"
[ "$fail" = 0 ] || die "$fail check(s) failed"
echo "image-check: all passed"
