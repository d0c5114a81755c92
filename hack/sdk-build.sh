#!/usr/bin/env bash
# Build the client SDKs' release artefacts into dist/sdk/: the Python wheel + sdist
# (ai-multimodel-client) and the npm tarball (@aimm/client). Tests install these, not the sources.
set -euo pipefail
cd "$(dirname "$0")/.."
out="$PWD/dist/sdk"
rm -rf "$out" sdk/python/build sdk/python/*.egg-info
mkdir -p "$out"
log="$(mktemp)"
.venv/bin/python -m build --no-isolation --sdist --wheel --outdir "$out" sdk/python >"$log" 2>&1 || { cat "$log"; exit 1; }
rm -f "$log"
rm -rf sdk/python/build sdk/python/*.egg-info
cd sdk/js
npm ci --no-audit --no-fund --loglevel=error >/dev/null
npm run --silent build
npm pack --silent --pack-destination "$out" >/dev/null
ls "$out"
