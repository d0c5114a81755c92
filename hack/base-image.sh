#!/usr/bin/env bash
# Build the Containerfile's base images from Debian packages, for machines that reach Debian's
# package mirror but no container registry. Users with registry access don't need this: the
# Containerfile's defaults are the public python:3.11-slim-bookworm image.
#
#   localhost/aimm-base:<release>-<hash>    runtime: minbase + python3 + ca-certificates
#   localhost/aimm-build:<release>-<hash>   build:   the same + python3-venv (ensurepip, for pip)
#
# <hash> covers the release, the package lists and this script, so a warm run (both images
# present) only checks `buildah inspect` and prints the two names. Output, last two lines:
#   BASE_IMAGE=localhost/aimm-base:...
#   BUILD_IMAGE=localhost/aimm-build:...
#
# Environment knobs:
#   DEBIAN_RELEASE   (default bookworm: Python 3.11, like the public base)
#   DEBIAN_MIRROR    (default: the first Debian URI in /etc/apt/sources.list*, else deb.debian.org)
#   STORAGE_DRIVER   buildah storage driver (default vfs: works without overlay support)
#   BASE_IMAGE_FORCE=1  rebuild even if present
set -euo pipefail

RELEASE="${DEBIAN_RELEASE:-bookworm}"
RUNTIME_PACKAGES=(python3 ca-certificates tzdata)
BUILD_PACKAGES=(python3-venv)
STORAGE_DRIVER="${STORAGE_DRIVER:-vfs}"
# Every buildah call uses the same store (buildah itself ignores $STORAGE_DRIVER).
buildah() { command buildah --storage-driver "$STORAGE_DRIVER" "$@"; }

log() { echo "base-image: $*" >&2; }
die() { echo "base-image: ERROR: $*" >&2; exit 1; }

# The mirror apt already uses here (deb822 `URIs:` or one-line `deb URL suite`).
detect_mirror() {
  local uri
  uri="$(cat /etc/apt/sources.list.d/*.sources 2>/dev/null \
    | awk '$1 == "URIs:" && $2 ~ /\/debian\/?$/ {print $2; exit}')"
  [ -n "$uri" ] || uri="$(cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null \
    | awk '$1 == "deb" && $2 ~ /\/debian\/?$/ {print $2; exit}')"
  echo "${uri:-http://deb.debian.org/debian}"
}
MIRROR="${DEBIAN_MIRROR:-$(detect_mirror)}"

HASH="$({ echo "$RELEASE ${RUNTIME_PACKAGES[*]} / ${BUILD_PACKAGES[*]}"; cat "${BASH_SOURCE[0]}"; } \
  | sha256sum | cut -c1-12)"
BASE="localhost/aimm-base:$RELEASE-$HASH"
BUILD="localhost/aimm-build:$RELEASE-$HASH"

have() { buildah inspect --type image "$1" >/dev/null 2>&1; }

if [ "${BASE_IMAGE_FORCE:-0}" != 1 ] && have "$BASE" && have "$BUILD"; then
  echo "BASE_IMAGE=$BASE"
  echo "BUILD_IMAGE=$BUILD"
  exit 0
fi

command -v debootstrap >/dev/null || die "debootstrap not found (apt-get install debootstrap)"
command -v buildah >/dev/null || die "buildah not found (apt-get install buildah)"
[ "$(id -u)" = 0 ] || die "debootstrap needs root"

start=$(date +%s)
WORK="$(mktemp -d "${TMPDIR:-/tmp}/aimm-base.XXXXXX")"
trap 'rm -rf "$WORK"' EXIT
ROOT="$WORK/rootfs"

log "debootstrap $RELEASE (minbase) from $MIRROR"
debootstrap --variant=minbase --include="$(IFS=,; echo "${RUNTIME_PACKAGES[*]},${BUILD_PACKAGES[*]}")" \
  "$RELEASE" "$ROOT" "$MIRROR" >"$WORK/debootstrap.log" 2>&1 \
  || { tail -30 "$WORK/debootstrap.log" >&2; die "debootstrap failed (log above)"; }

# Shrink what no container needs: apt lists and caches, docs, man pages, locales.
slim() {
  rm -rf "$1"/var/lib/apt/lists/* "$1"/var/cache/apt/* "$1"/var/cache/debconf/*-old \
    "$1"/usr/share/doc/* "$1"/usr/share/man/* "$1"/usr/share/info/* "$1"/var/log/*
  find "$1/usr/share/locale" -mindepth 1 -maxdepth 1 ! -name 'locale.alias' -exec rm -rf {} + 2>/dev/null || true
  find "$1" -name '__pycache__' -type d -prune -exec rm -rf {} +
}

# One rootfs directory -> one image, with the metadata the public python image has.
commit() {
  local rootfs="$1" name="$2" ctr mnt
  ctr="$(buildah from scratch)"
  mnt="$(buildah mount "$ctr")"
  tar -C "$rootfs" -cf - . | tar -C "$mnt" -xf -
  buildah umount "$ctr" >/dev/null
  buildah config --env LANG=C.UTF-8 --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    --cmd '["python3"]' \
    --label org.opencontainers.image.description="Debian $RELEASE minbase + Python, built by hack/base-image.sh" \
    "$ctr"
  buildah commit --rm --quiet "$ctr" "$name" >/dev/null
  log "committed $name"
}

# The Containerfile calls `python`; Debian names it python3 (python-is-python3 would add nothing else).
ln -sf python3 "$ROOT/usr/bin/python"
slim "$ROOT"
commit "$ROOT" "$BUILD"

# The runtime drops the build-only packages again (and with them the pip wheel ensurepip carries).
chroot "$ROOT" dpkg --purge python3-venv python3.11-venv python3-pip-whl python3-setuptools-whl >/dev/null
slim "$ROOT"
commit "$ROOT" "$BASE"

log "built in $(( $(date +%s) - start ))s"
echo "BASE_IMAGE=$BASE"
echo "BUILD_IMAGE=$BUILD"
