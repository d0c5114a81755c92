#!/usr/bin/env bash
# Build the small Go checkers the install tests use, from hack/gotools/ (a Go module):
#   kindcheck     validates kind-config.yaml with kind's own code   (sigs.k8s.io/kind)
#   kstatuscheck  computes kstatus of objects, as Flux reads health  (sigs.k8s.io/cli-utils)
# Cached like hack/envtest.sh: ~/.cache/aimm/bin/gotools-<hash>/ (or $GOTOOLS_BIN_ROOT/...), the
# hash covering the module, its sources and this script, so a warm run only checks a stamp.
# The last line of output is the bin dir.
set -euo pipefail
SELF="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/$(basename "${BASH_SOURCE[0]}")"
REPO_ROOT="$(dirname "$(dirname "$SELF")")"
MOD_DIR="$REPO_ROOT/hack/gotools"
TOOLS=(kindcheck kstatuscheck)

HASH="$(cd "$MOD_DIR" && cat go.mod go.sum ./*/*.go "$SELF" | sha256sum | cut -c1-12)"
BIN_ROOT="${GOTOOLS_BIN_ROOT:-${XDG_CACHE_HOME:-$HOME/.cache}/aimm/bin}"
BIN_DIR="$BIN_ROOT/gotools-$HASH"
if [ -f "$BIN_DIR/.stamp" ]; then
  echo "$BIN_DIR"
  exit 0
fi

command -v go >/dev/null || { echo "gotools: 'go' not found on PATH" >&2; exit 1; }
mkdir -p "$BIN_ROOT"
STAGE="$(mktemp -d "$BIN_ROOT/.gotools.build.XXXXXX")"
trap 'rm -rf "$STAGE"' EXIT
start=$(date +%s)
(cd "$MOD_DIR" && CGO_ENABLED=0 GOTOOLCHAIN="${GOTOOLCHAIN:-auto}" \
  GOFLAGS="-mod=readonly -buildvcs=false -p=${ENVTEST_GO_PARALLEL:-2}" \
  go build -trimpath -ldflags="-s -w" -o "$STAGE/" "${TOOLS[@]/#/./}")
touch "$STAGE/.stamp"
rm -rf "$BIN_DIR" && mv "$STAGE" "$BIN_DIR"
echo "gotools: built ${TOOLS[*]} in $(( $(date +%s) - start ))s" >&2
echo "$BIN_DIR"
