#!/usr/bin/env bash
# Quick A/B of the gateway's hot path: an old revision against the working tree, interleaved.
#
#   bash hack/ab-gateway.sh [OLD_REV=main] [ROUNDS=3] [DURATION=10s]
#
# Both gateways run from this repo's .venv (the old one from a temporary worktree put first on
# PYTHONPATH), one uvicorn worker each, pinned to CPU 0; wrk runs on CPU 1. The config routes
# `smart` (intelligent) over two in-process mock models with auth on, so the figures are the
# gateway's own cost. Per run: p50 at concurrency 1, RPS at concurrency 8, and the gateway's CPU
# time per request (/proc utime+stime), the figure least disturbed by other load on the host.
set -euo pipefail
OLD=${1:-main}; ROUNDS=${2:-3}; DUR=${3:-10s}
REPO=$(cd "$(dirname "$0")/.." && pwd)
PY=$REPO/.venv/bin/python
TMP=$(mktemp -d)
trap 'kill $(cat "$TMP"/*.pid 2>/dev/null) 2>/dev/null || true; git -C "$REPO" worktree remove --force "$TMP/old" >/dev/null 2>&1 || true; rm -rf "$TMP"' EXIT
git -C "$REPO" worktree add --detach "$TMP/old" "$OLD" >/dev/null 2>&1
mkdir -p "$TMP/old_pp" "$TMP/new_pp"
ln -s "$TMP/old/gateway" "$TMP/old_pp/aimm_gateway"
ln -s "$REPO/gateway" "$TMP/new_pp/aimm_gateway"
cat > "$TMP/gw.yaml" <<'YAML'
server: {host: 127.0.0.1, default_model: smart}
auth: {enabled: true, api_keys: [{name: bench, key: {env: AIMM_API_KEY}}]}
models:
  - {name: mock-fast, provider: mock, context_window: 16000, pricing: {input_per_1k: "0.0005", output_per_1k: "0.0015"}}
  - {name: mock-smart, provider: mock, context_window: 200000, pricing: {input_per_1k: "0.003", output_per_1k: "0.015"}}
routes:
  - {name: smart, algorithm: intelligent, targets: [{model: mock-smart}, {model: mock-fast}], fallbacks: [mock-fast]}
YAML
cat > "$TMP/post.lua" <<'LUA'
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer bench-key"
wrk.body = '{"model":"smart","messages":[{"role":"user","content":"Say hello in one short sentence."}],"max_tokens":32}'
LUA
export AIMM_API_KEY=bench-key AIMM_LOG_LEVEL=WARNING
TCK=$(getconf CLK_TCK)
declare -A PORT=([old]=18601 [new]=18602)
for v in old new; do
  PYTHONPATH=$TMP/${v}_pp taskset -c 0 "$PY" -P -c 'import sys; from aimm_gateway.cli import main; sys.exit(main())' \
    gateway serve --config "$TMP/gw.yaml" --port "${PORT[$v]}" >"$TMP/$v.log" 2>&1 &
  echo $! >"$TMP/$v.pid"
done
URL() { echo "http://127.0.0.1:${PORT[$1]}/v1/chat/completions"; }
for v in old new; do
  for _ in $(seq 100); do curl -sf "127.0.0.1:${PORT[$v]}/health" >/dev/null && break; sleep 0.2; done
  taskset -c 1 wrk -t1 -c8 -d3s -s "$TMP/post.lua" "$(URL $v)" >/dev/null  # warm-up
done
run() {  # variant, connections, extra wrk args
  local v=$1 c=$2; shift 2
  local pid; pid=$(cat "$TMP/$v.pid")
  local before; before=$(awk '{print $14+$15}' "/proc/$pid/stat")
  local out; out=$(taskset -c 1 wrk -t1 -c"$c" -d"$DUR" "$@" -s "$TMP/post.lua" "$(URL "$v")")
  local after; after=$(awk '{print $14+$15}' "/proc/$pid/stat")
  echo "$out" | awk -v v="$v" -v c="$c" -v d=$((after - before)) -v t="$TCK" '
    /requests in/ {n=$1} /^ +50%/ {p50=$2} /Requests\/sec/ {rps=$2} /Non-2xx/ {bad=$NF}
    END {printf "%s c=%s p50=%s rps=%s cpu_us_per_req=%.0f non2xx=%d\n", v, c, p50, rps, d/t/n*1e6, bad}'
}
for round in $(seq "$ROUNDS"); do
  for v in old new; do echo "round $round $(run $v 1 --latency)"; echo "round $round $(run $v 8)"; done
done
