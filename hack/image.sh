#!/usr/bin/env bash
# `make image`: build the Containerfile with buildah (vfs storage, chroot isolation: no daemon,
# no overlay or user-namespace support needed).
#
#   IMAGE        tag to build (default ghcr.io/aimm/ai-multimodel:<pyproject version>, the tag the
#                chart, the plain manifests and the AIGateway CRD default to)
#   IMAGE_BASE   public : FROM docker.io/library/python:3.11-slim-bookworm (needs a registry)
#                debian : FROM local images built from Debian packages (hack/base-image.sh)
#                auto   : public if it can be pulled within IMAGE_PULL_TIMEOUT seconds, else debian
#                         (default)
#   IMAGE_CA_BUNDLE  CA bundle handed to pip as the `cacert` build secret (default: the system's,
#                    so a TLS-inspecting proxy the host trusts works in the build too)
#   IMAGE_FORCE=1  rebuild even if the image was built from these exact sources
#
# The image carries a label with the hash of everything it is built from (Containerfile, base
# image ids, pyproject.toml, gateway/, operator/); a run whose hash matches the existing image
# does nothing. No `--layers`: with vfs storage every committed layer is a full copy of the root
# filesystem, so committing each instruction costs more than reinstalling the dependencies.
# The last line of output is the image name.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
STORAGE_DRIVER="${STORAGE_DRIVER:-vfs}"
# Every buildah call uses the same store (buildah itself ignores $STORAGE_DRIVER).
buildah() { command buildah --storage-driver "$STORAGE_DRIVER" "$@"; }
export BUILDAH_ISOLATION="${BUILDAH_ISOLATION:-chroot}"

PUBLIC_BASE="docker.io/library/python:3.11-slim-bookworm"
VERSION="$(sed -n 's/^version = "\(.*\)"$/\1/p' pyproject.toml | head -1)"
IMAGE="${IMAGE:-ghcr.io/aimm/ai-multimodel:$VERSION}"
MODE="${IMAGE_BASE:-auto}"
HASH_LABEL="io.aimm.source-hash"

log() { echo "image: $*" >&2; }
die() { echo "image: ERROR: $*" >&2; exit 1; }
command -v buildah >/dev/null || die "buildah not found (bash hack/system-deps.sh buildah)"

if [ "$MODE" = auto ]; then
  if timeout "${IMAGE_PULL_TIMEOUT:-30}" buildah pull --quiet "$PUBLIC_BASE" >/dev/null 2>&1; then
    MODE=public
  else
    log "$PUBLIC_BASE cannot be pulled here: building the base from Debian packages"
    MODE=debian
  fi
fi
case "$MODE" in
  public) BASE_IMAGE="$PUBLIC_BASE"; BUILD_IMAGE="$PUBLIC_BASE" ;;
  debian) eval "$(bash hack/base-image.sh | grep -E '^(BASE|BUILD)_IMAGE=')" ;;
  *) die "IMAGE_BASE=$MODE (expected auto, public or debian)" ;;
esac

image_id() { buildah inspect --type image --format '{{.FromImageID}}' "$1" 2>/dev/null; }
source_hash() {
  {
    echo "$BASE_IMAGE $(image_id "$BASE_IMAGE") $BUILD_IMAGE $(image_id "$BUILD_IMAGE")"
    git ls-files -co --exclude-standard -- Containerfile .containerignore pyproject.toml gateway operator \
      | grep -v -e '__pycache__' -e '\.pyc$' | LC_ALL=C sort | xargs sha256sum
  } | sha256sum | cut -c1-16
}
WANT="$(source_hash)"
HAVE="$(buildah inspect --type image --format "{{index .ImageAnnotations \"$HASH_LABEL\"}}" "$IMAGE" 2>/dev/null || true)"
if [ "${IMAGE_FORCE:-0}" != 1 ] && [ "$HAVE" = "$WANT" ]; then
  log "$IMAGE is up to date (sources $WANT)"
  echo "$IMAGE"
  exit 0
fi

start=$(date +%s)
CREATED="$(git log -1 --format=%cI 2>/dev/null || date -u +%Y-%m-%dT%H:%M:%SZ)"
REVISION="$(git rev-parse HEAD 2>/dev/null || echo unknown)"
CA_BUNDLE="${IMAGE_CA_BUNDLE:-/etc/ssl/certs/ca-certificates.crt}"
SECRET=()
[ -s "$CA_BUNDLE" ] && SECRET=(--secret "id=cacert,src=$CA_BUNDLE")
log "building $IMAGE from $BASE_IMAGE (build stage: $BUILD_IMAGE)"
buildah bud --layers=false --isolation "$BUILDAH_ISOLATION" -f Containerfile -t "$IMAGE" \
  --build-arg BASE_IMAGE="$BASE_IMAGE" --build-arg BUILD_IMAGE="$BUILD_IMAGE" \
  --build-arg VERSION="$VERSION" --build-arg REVISION="$REVISION" --build-arg CREATED="$CREATED" \
  --annotation "$HASH_LABEL=$WANT" "${SECRET[@]}" --pull=never --quiet . >/dev/null
# The image this one replaces is left untagged; with vfs each is a full copy, so drop them.
buildah rmi --prune >/dev/null 2>&1 || true
log "built in $(( $(date +%s) - start ))s; size $(buildah images --format '{{.Size}}' "$IMAGE" | head -1)"
echo "$IMAGE"
