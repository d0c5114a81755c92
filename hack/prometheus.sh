#!/usr/bin/env bash
# Build prometheus and promtool from the Prometheus Go module for the observability tests.
#
#   prometheus, promtool  <- github.com/prometheus/prometheus/cmd/{prometheus,promtool}@$PROM_MODULE_VERSION
#
# Built without the `builtinassets` tag, so the React web UI is neither built nor embedded
# (the tests only use the HTTP API), and with `remove_all_sd`, so none of the cloud service
# discovery plugins (AWS, Azure, GCE, Kubernetes, ...) and their SDKs are compiled: static
# scrape targets are all the tests need, and the cold build is several times faster. Cached per machine under
# ~/.cache/aimm/bin/prometheus-<version>/ (or $PROMETHEUS_BIN_ROOT/prometheus-<version>/): a warm
# run only checks a stamp file. The last line of output is the bin dir.
#
# Environment knobs:
#   PROMETHEUS_BIN_ROOT  parent of prometheus-<version>/  (default: ~/.cache/aimm/bin)
#   PROMETHEUS_GO_PARALLEL  go build -p value             (default: 2)
#   PROMETHEUS_FORCE=1   rebuild even if the stamp matches
set -euo pipefail

# The Go module's v0.3XX.Y is Prometheus v3.XX.Y.
PROM_MODULE_VERSION="v0.316.0"
PROM_VERSION="3.16.0"

log() { echo "prometheus.sh: $*" >&2; }
die() { echo "prometheus.sh: ERROR: $*" >&2; exit 1; }

BIN_ROOT="${PROMETHEUS_BIN_ROOT:-${XDG_CACHE_HOME:-$HOME/.cache}/aimm/bin}"
BIN_DIR="$BIN_ROOT/prometheus-$PROM_MODULE_VERSION"
STAMP_FILE="$BIN_DIR/.prometheus-stamp"
BINARIES=(prometheus promtool)

stamp() { { cat "${BASH_SOURCE[0]}"; echo "$PROM_MODULE_VERSION"; } | sha256sum | cut -d' ' -f1; }

all_present() {
  local b
  for b in "${BINARIES[@]}"; do [ -x "$BIN_DIR/$b" ] || return 1; done
}

WANT_STAMP="$(stamp)"
if [ "${PROMETHEUS_FORCE:-0}" != 1 ] && all_present && [ -f "$STAMP_FILE" ] \
   && [ "$(cat "$STAMP_FILE")" = "$WANT_STAMP" ]; then
  echo "$BIN_DIR"
  exit 0
fi

command -v go >/dev/null 2>&1 || die "'go' not found on PATH (newer toolchains come from the Go module proxy via GOTOOLCHAIN=auto)"
mkdir -p "$BIN_DIR"
STAGE="$(mktemp -d "$BIN_ROOT/.prometheus-$PROM_MODULE_VERSION.build.XXXXXX")"
trap 'rm -rf "$STAGE"' EXIT

export CGO_ENABLED=0
export GOTOOLCHAIN="${GOTOOLCHAIN:-auto}"
export GOFLAGS="-p=${PROMETHEUS_GO_PARALLEL:-2} -buildvcs=false"

# Same version stamping as Prometheus' own .promu.yml, so `prometheus --version` is truthful.
V=github.com/prometheus/common/version
LDFLAGS="-s -w -X $V.Version=$PROM_VERSION -X $V.Revision=$PROM_MODULE_VERSION -X $V.Branch=module"
LDFLAGS+=" -X $V.BuildUser=aimm -X $V.BuildDate=$(date -u +%Y%m%d-%H:%M:%S)"

build_start=$(date +%s)
log "building prometheus and promtool $PROM_VERSION from the Go module (several minutes on 2 cores)"
for b in "${BINARIES[@]}"; do
  GOBIN="$STAGE" go install -trimpath -tags netgo,remove_all_sd -ldflags="$LDFLAGS" \
    "github.com/prometheus/prometheus/cmd/$b@$PROM_MODULE_VERSION"
done
for b in "${BINARIES[@]}"; do
  [ -x "$STAGE/$b" ] || die "build produced no $b"
  mv -f "$STAGE/$b" "$BIN_DIR/$b"
done
echo "$WANT_STAMP" > "$STAMP_FILE"
"$BIN_DIR/prometheus" --version 2>&1 | head -1 >&2
log "built in $(( $(date +%s) - build_start ))s"
echo "$BIN_DIR"
