#!/usr/bin/env bash
# Print a merge patch for Argo CD's argocd-cm ConfigMap that installs the aimm health checks
# (deploy/argocd/health/<group>/<Kind>/health.lua) under Argo CD's documented keys
# `resource.customizations.health.<group>_<Kind>`:
#
#   bash hack/argocd-cm.sh | kubectl -n argocd patch configmap argocd-cm --type merge --patch-file /dev/stdin
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../deploy/argocd/health"
python3 - <<'PY'
import json
from pathlib import Path

data = {
    f"resource.customizations.health.{p.parts[0]}_{p.parts[1]}": p.read_text()
    for p in sorted(Path(".").glob("*/*/health.lua"))
}
print(json.dumps({"data": data}, indent=2))
PY
