#!/usr/bin/env bash
# `make kind-up` / `make kind-down`: aimm on a local kind cluster (kind-config.yaml).
#
#   up:   create the cluster (if missing), build the image and load it into the nodes, install
#         metrics-server (the gateway's HPA needs it), the chart, examples/k8s/ and the NodePort
#         Service that kind-config.yaml maps to http://127.0.0.1:8080; wait for the gateway.
#   down: delete the cluster.
#
# Needs kind, kubectl, helm and a container engine kind supports (docker or podman). The image
# is built with buildah (`make image`) when it is installed, else with docker/podman build.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
CLUSTER="$(awk '$1 == "name:" {print $2; exit}' kind-config.yaml)"
VERSION="$(sed -n 's/^version = "\(.*\)"$/\1/p' pyproject.toml | head -1)"
IMAGE="${IMAGE:-ghcr.io/aimm/ai-multimodel:$VERSION}"
METRICS_SERVER_VERSION="${METRICS_SERVER_VERSION:-v0.7.2}"
NS="${AIMM_NAMESPACE:-aimm-system}"

log() { echo "kind: $*" >&2; }
need() { command -v "$1" >/dev/null || { echo "kind: '$1' not found on PATH" >&2; exit 1; }; }

load_image() {
  if command -v buildah >/dev/null; then
    IMAGE="$IMAGE" bash hack/image.sh >/dev/null
    local archive; archive="$(mktemp -d)/aimm.tar"
    buildah --storage-driver "${STORAGE_DRIVER:-vfs}" push --quiet "$IMAGE" "docker-archive:$archive:$IMAGE"
    kind load image-archive "$archive" --name "$CLUSTER"
    rm -rf "$(dirname "$archive")"
  else
    local engine; engine="$(command -v docker || command -v podman)"
    "$engine" build -f Containerfile -t "$IMAGE" .
    kind load docker-image "$IMAGE" --name "$CLUSTER"
  fi
}

up() {
  need kind; need kubectl; need helm
  if kind get clusters 2>/dev/null | grep -qx "$CLUSTER"; then
    log "cluster $CLUSTER exists"
  else
    kind create cluster --config kind-config.yaml
  fi
  kubectl config use-context "kind-$CLUSTER" >/dev/null
  log "building and loading $IMAGE"
  load_image
  log "installing metrics-server $METRICS_SERVER_VERSION (kubelet certificates on kind are self-signed)"
  kubectl apply -f "https://github.com/kubernetes-sigs/metrics-server/releases/download/$METRICS_SERVER_VERSION/components.yaml"
  kubectl -n kube-system get deployment metrics-server -o jsonpath='{.spec.template.spec.containers[0].args}' \
    | grep -q kubelet-insecure-tls \
    || kubectl -n kube-system patch deployment metrics-server --type=json \
      -p '[{"op": "add", "path": "/spec/template/spec/containers/0/args/-", "value": "--kubelet-insecure-tls"}]'
  log "installing the chart"
  helm upgrade --install aimm charts/ai-multimodel -n "$NS" --create-namespace --wait \
    --set image.repository="${IMAGE%:*}" --set image.tag="${IMAGE##*:}"
  kubectl apply -f examples/k8s/
  kubectl apply -f deploy/kind/
  kubectl wait aigateway/main --for=condition=Ready --timeout=10m
  log "ready: curl http://127.0.0.1:8080/v1/models -H 'Authorization: Bearer sk-aimm-replace-me'"
}

down() {
  need kind
  kind delete cluster --name "$CLUSTER"
}

case "${1:-}" in
  up) up ;;
  down) down ;;
  *) echo "usage: $0 up|down" >&2; exit 2 ;;
esac
