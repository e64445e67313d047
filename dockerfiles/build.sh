#!/usr/bin/env bash
# Build the toystore service binaries as static executables and the three
# FROM-scratch images: ${TOYSTORE_IMAGE_PREFIX:-toystore}-{catalog,order,frontend}:${TOYSTORE_TAG:-latest}.
# After this, `docker compose up` (or `docker-compose up`) needs nothing else.
#
# Environment:
#   TOYSTORE_IMAGE_PREFIX  image name prefix (default: toystore)
#   TOYSTORE_TAG           image tag (default: latest)
#   TOYSTORE_SERVICES      which images to build (default: "catalog order frontend")
#   CARGO_TARGET_DIR       respected, as cargo does
#   TOYSTORE_BIN_DIR       skip cargo: take the (static) binaries from this folder
#
# Why static glibc: only the x86_64-unknown-linux-gnu target is installed (no musl).
# `-C target-feature=+crt-static` links glibc statically. glibc >= 2.34 carries its
# "files" and "dns" NSS back-ends inside libc itself, so getaddrinfo in a static
# binary resolves names through /etc/hosts and /etc/resolv.conf (which Docker
# bind-mounts into every container, Docker's embedded DNS at 127.0.0.11 on a user
# network) without any libnss_*.so in the image. Proven on this machine: a
# static binary in a scratch image resolved a peer's compose service name.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/.." && pwd)
prefix=${TOYSTORE_IMAGE_PREFIX:-toystore}
tag=${TOYSTORE_TAG:-latest}
services=${TOYSTORE_SERVICES:-catalog order frontend}
target=x86_64-unknown-linux-gnu

command -v docker >/dev/null || { echo "build.sh: docker not found" >&2; exit 1; }
command -v cargo >/dev/null || { echo "build.sh: cargo not found" >&2; exit 1; }

bins=()
for s in $services; do bins+=(--bin "$s"); done

if [ -n "${TOYSTORE_BIN_DIR:-}" ]; then
  outdir=$TOYSTORE_BIN_DIR
  echo "== using prebuilt binaries from $outdir"
else
  echo "== cargo build --release --target $target (static glibc): $services"
  (
    cd "$root"
    # RUSTFLAGS with an explicit --target applies to the binaries only, not to
    # build scripts and proc-macros, which must stay dynamic.
    # The release profile keeps line tables for profiling; the images strip them
    # anyway, so they are not built (a faster build, and its own cache here).
    RUSTFLAGS="${RUSTFLAGS:-} -C target-feature=+crt-static" \
    CARGO_PROFILE_RELEASE_DEBUG="${CARGO_PROFILE_RELEASE_DEBUG:-0}" \
      cargo build --release --locked --target "$target" "${bins[@]}"
  )
  outdir="${CARGO_TARGET_DIR:-$root/target}"
  case "$outdir" in /*) ;; *) outdir="$root/$outdir" ;; esac
  outdir="$outdir/$target/release"
fi

ctx=$(mktemp -d "${TMPDIR:-/tmp}/toystore-image.XXXXXX")
trap 'rm -rf "$ctx"' EXIT
mkdir -m 0755 "$ctx/data"

revision=$(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo unknown)

for s in $services; do
  bin="$outdir/$s"
  [ -x "$bin" ] || { echo "build.sh: $bin missing" >&2; exit 1; }
  # A scratch image has no loader: refuse a dynamically linked binary.
  if command -v readelf >/dev/null && readelf -lW "$bin" | grep -q 'Requesting program interpreter'; then
    echo "build.sh: $bin is dynamically linked; a scratch image cannot run it" >&2
    exit 1
  fi
  # The release profile keeps debug info for profiling; the image does not need it.
  if command -v strip >/dev/null; then
    strip -o "$ctx/$s" "$bin"
  else
    cp "$bin" "$ctx/$s"
  fi
  chmod 0755 "$ctx/$s"
  image="$prefix-$s:$tag"
  previous=$(docker image inspect -f '{{.Id}}' "$image" 2>/dev/null || true)
  echo "== docker build $image"
  docker build --quiet \
    --label "org.opencontainers.image.title=toystore-$s" \
    --label "org.opencontainers.image.revision=$revision" \
    -f "$here/$s.Dockerfile" -t "$image" "$ctx" 2> >(grep -v -e 'legacy builder is deprecated' -e 'Install the buildx' -e 'docs.docker.com/go/buildx' -e '^ *$' >&2)
  # The image this tag named before is left untagged: remove it, unless something
  # still uses it (a container, another tag), in which case Docker refuses and it stays.
  if [ -n "$previous" ] && [ "$previous" != "$(docker image inspect -f '{{.Id}}' "$image")" ]; then
    docker image rm "$previous" >/dev/null 2>&1 || true
  fi
done

echo "== images"
for s in $services; do
  docker image ls --format '{{.Repository}}:{{.Tag}}  {{.Size}}' "$prefix-$s:$tag"
done
