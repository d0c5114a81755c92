#!/usr/bin/env bash
# Build a real Kubernetes control plane for integration tests from Go modules.
#
#   kube-apiserver, kube-controller-manager, kubectl  <- k8s.io/kubernetes (hack/envtest/go.mod)
#   etcd                                              <- see ETCD_SOURCE below
#   helm, kubeconform                                 <- go install, pinned below
#
# Everything is built into a per-machine cache, ~/.cache/aimm/bin/k8s-<K8S_VERSION>/
# (or $ENVTEST_BIN_ROOT/k8s-<K8S_VERSION>/), and linked as bin/k8s-<K8S_VERSION> in the
# repo, so a fresh clone on a warm machine (CI) reuses the binaries. A warm run only
# checks a stamp file and prints the directory. The last line of output is the bin dir.
#
# Environment knobs:
#   ENVTEST_BIN_ROOT   parent of k8s-<version>/            (default: ~/.cache/aimm/bin)
#   ENVTEST_GO_PARALLEL  go build -p value                 (default: 2)
#   ETCD_SOURCE        go  : build etcd from go.etcd.io/etcd/server/v3 at the version
#                            k8s.io/kubernetes pins (default; matches the apiserver's
#                            etcd client, no system package needed)
#                      apt : use Debian's etcd-server package (bookworm ships 3.4.23;
#                            apt-get update + install as root when missing)
#   ENVTEST_FORCE=1    rebuild even if the stamp matches
set -euo pipefail

HELM_VERSION="v3.22.0"
KUBECONFORM_VERSION="v0.8.0"
ETCD_SOURCE="${ETCD_SOURCE:-go}"

log() { echo "envtest: $*" >&2; }
die() { echo "envtest: ERROR: $*" >&2; exit 1; }

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
MOD_DIR="$REPO_ROOT/hack/envtest"
K8S_VERSION="$(awk '$1 == "require" {$0 = substr($0, index($0, $2))}
                    $1 == "k8s.io/kubernetes" && $2 ~ /^v/ {print $2; exit}' "$MOD_DIR/go.mod")"
[ -n "$K8S_VERSION" ] || die "cannot find the k8s.io/kubernetes requirement in $MOD_DIR/go.mod"

BIN_ROOT="${ENVTEST_BIN_ROOT:-${XDG_CACHE_HOME:-$HOME/.cache}/aimm/bin}"
BIN_DIR="$BIN_ROOT/k8s-$K8S_VERSION"
REPO_LINK="$REPO_ROOT/bin/k8s-$K8S_VERSION"
mkdir -p "$BIN_ROOT" "$REPO_ROOT/bin"

# The repo's bin/k8s-<version> points at the machine cache (unless they are the same place).
link_into_repo() {
  if [ "$(cd "$BIN_DIR" && pwd -P)" != "$(cd "$REPO_ROOT/bin" && pwd -P)/k8s-$K8S_VERSION" ]; then
    ln -sfn "$BIN_DIR" "$REPO_LINK"
  fi
}
STAMP_FILE="$BIN_DIR/.envtest-stamp"
BINARIES=(kube-apiserver kube-controller-manager kubectl etcd helm kubeconform)

# The stamp covers everything that determines the binaries' content (this
# script included: changing build flags here triggers a rebuild).
stamp() {
  {
    cat "$MOD_DIR/go.mod" "$MOD_DIR/go.sum" "$MOD_DIR/tools.go" "${BASH_SOURCE[0]}"
    echo "helm=$HELM_VERSION kubeconform=$KUBECONFORM_VERSION etcd=$ETCD_SOURCE"
  } | sha256sum | cut -d' ' -f1
}

all_present() {
  local b
  for b in "${BINARIES[@]}"; do
    [ -x "$BIN_DIR/$b" ] || return 1
  done
}

# ---------------------------------------------------------------- warm path
WANT_STAMP="$(stamp)"
if [ "${ENVTEST_FORCE:-0}" != 1 ] && all_present && [ -f "$STAMP_FILE" ] \
   && [ "$(cat "$STAMP_FILE")" = "$WANT_STAMP" ]; then
  link_into_repo
  echo "$BIN_DIR"
  exit 0
fi

# ---------------------------------------------------------------- cold path
command -v go >/dev/null 2>&1 || die "'go' not found on PATH; install Go >= 1.21 (go.mod asks for $(awk '$1=="go"{print $2}' "$MOD_DIR/go.mod"), newer toolchains are fetched from the Go module proxy via GOTOOLCHAIN=auto)"

mkdir -p "$BIN_DIR"
STAGE="$(mktemp -d "$BIN_ROOT/.k8s-$K8S_VERSION.build.XXXXXX")"
trap 'rm -rf "$STAGE"' EXIT

export CGO_ENABLED=0          # static binaries, no C toolchain needed
export GOFLAGS="${GOFLAGS:-} -p=${ENVTEST_GO_PARALLEL:-2} -mod=readonly -buildvcs=false"
export GOTOOLCHAIN="${GOTOOLCHAIN:-auto}"

# Same version stamping Kubernetes' own hack/lib/version.sh does; without it the
# binaries report v0.0.0-master, which breaks kubeVersion checks (helm) etc.
MAJOR="${K8S_VERSION#v}"; MAJOR="${MAJOR%%.*}"
MINOR="${K8S_VERSION#v*.}"; MINOR="${MINOR%%.*}"
BUILD_DATE="$(date -u +%Y-%m-%dT%H:%M:%SZ)"
LDFLAGS="-s -w"
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  LDFLAGS+=" -X $pkg.gitVersion=$K8S_VERSION -X $pkg.gitMajor=$MAJOR -X $pkg.gitMinor=$MINOR"
  LDFLAGS+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=$BUILD_DATE"
done

build_start=$(date +%s)
K8S_CMDS=(k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kube-controller-manager k8s.io/kubernetes/cmd/kubectl)
log "building ${K8S_CMDS[*]##*/} $K8S_VERSION (GOFLAGS=$GOFLAGS; this takes several minutes on 2 cores)"
(cd "$MOD_DIR" && go build -trimpath -ldflags="$LDFLAGS" -o "$STAGE/" "${K8S_CMDS[@]}")

case "$ETCD_SOURCE" in
  go)
    ETCD_VERSION="$(cd "$MOD_DIR" && go list -m -f '{{.Version}}' go.etcd.io/etcd/server/v3)"
    log "building etcd $ETCD_VERSION (go.etcd.io/etcd/server/v3, as pinned by k8s.io/kubernetes)"
    (cd "$MOD_DIR" && go build -trimpath -ldflags="-s -w" -o "$STAGE/etcd" go.etcd.io/etcd/server/v3)
    ;;
  apt)
    # Debian's etcd-server (bookworm: 3.4.23). The .deb is unpacked into the bin
    # dir rather than installed, so no system etcd service gets started.
    if [ -x /usr/bin/etcd ]; then
      ln -sf /usr/bin/etcd "$STAGE/etcd"
    else
      (cd "$STAGE" && apt-get download etcd-server >&2) || {
        [ "$(id -u)" = 0 ] || die "apt-get download etcd-server failed; run 'apt-get update' as root"
        apt-get update >&2 && (cd "$STAGE" && apt-get download etcd-server >&2)
      } || die "apt-get download etcd-server failed"
      dpkg-deb -x "$STAGE"/etcd-server_*.deb "$STAGE/deb"
      mv "$STAGE/deb/usr/bin/etcd" "$STAGE/etcd"
    fi
    ;;
  *) die "unknown ETCD_SOURCE=$ETCD_SOURCE (expected go or apt)";;
esac

log "installing helm $HELM_VERSION and kubeconform $KUBECONFORM_VERSION"
# `go install pkg@version` resolves in the tool's own module; don't force -mod.
TOOL_GOFLAGS="${GOFLAGS/-mod=readonly/}"
# Same -X flags as helm's release Makefile: without k8sVersionMajor/Minor,
# `helm template`/`helm lint` assume Kubernetes v1.20 for .Capabilities.KubeVersion
# and chart kubeVersion constraints. Helm derives them from its client-go (v0.N -> 1.N).
HELM_GOMOD="$(GOFLAGS="$TOOL_GOFLAGS" go mod download -json "helm.sh/helm/v3@$HELM_VERSION" \
  | sed -n 's/^[[:space:]]*"GoMod": "\(.*\)",\{0,1\}$/\1/p')"
HELM_K8S_MINOR="$(awk '$1 == "k8s.io/client-go" {split($2, v, "."); print v[2]; exit}' "$HELM_GOMOD")"
[ -n "$HELM_K8S_MINOR" ] || die "cannot read k8s.io/client-go version from $HELM_GOMOD"
HELM_LDFLAGS="-s -w -X helm.sh/helm/v3/internal/version.version=$HELM_VERSION"
for pkg in helm.sh/helm/v3/pkg/chartutil helm.sh/helm/v3/pkg/lint/rules; do
  HELM_LDFLAGS+=" -X $pkg.k8sVersionMajor=1 -X $pkg.k8sVersionMinor=$HELM_K8S_MINOR"
done
GOFLAGS="$TOOL_GOFLAGS" GOBIN="$STAGE" \
  go install -trimpath -ldflags="$HELM_LDFLAGS" "helm.sh/helm/v3/cmd/helm@$HELM_VERSION"
GOFLAGS="$TOOL_GOFLAGS" GOBIN="$STAGE" \
  go install -trimpath -ldflags="-s -w -X main.version=$KUBECONFORM_VERSION" \
  "github.com/yannh/kubeconform/cmd/kubeconform@$KUBECONFORM_VERSION"

for b in "${BINARIES[@]}"; do
  [ -e "$STAGE/$b" ] || die "build produced no $b"
  mv -f "$STAGE/$b" "$BIN_DIR/$b"
done
echo "$WANT_STAMP" > "$STAMP_FILE"

log "versions:"
"$BIN_DIR/kube-apiserver" --version >&2
"$BIN_DIR/etcd" --version 2>&1 | head -1 >&2
log "built in $(( $(date +%s) - build_start ))s"
link_into_repo
echo "$BIN_DIR"
