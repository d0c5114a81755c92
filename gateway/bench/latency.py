"""`aimm bench --latency-only`: added p50 at concurrency 1, interleaved and paired per round.

The full bench measures each path once at concurrency 1, one after another, so a burst of host
noise lands on one contender. Here every round runs direct, nginx, the floor (bench/floor.py: uvicorn
and the h1 client with no gateway around them), each `--ab` gateway and this tree back to back
(wrk -c1), and a contender's added latency is its p50 minus the direct path's p50 *of the same
round*; the median over rounds is reported with its range. The issue-14 target (added p50 ≤
nginx's + 0.3 ms) is read from those medians.
"""

from __future__ import annotations

import os
import statistics
import time
from contextlib import ExitStack
from pathlib import Path

from aimm_gateway.bench.ab import checkout_env, resolve
from aimm_gateway.bench.floor import floor_proxy
from aimm_gateway.bench.loadgen import wrk
from aimm_gateway.bench.nginx import nginx_proxy
from aimm_gateway.bench.runner import HEADERS, THIS_CLIENT, body, gateway
from aimm_gateway.bench.stream_bench import PACED_CHUNKS, start_mocks

TARGET_OVER_NGINX_MS = 0.3
FLOOR = "floor: uvicorn + h1 + orjson, no gateway"
WARMUP_S = 2.0


def measure(refs: list[str], rounds: int, duration: float, workdir: Path) -> dict[str, list[float]]:
    """p50 (ms) per round for each contender: direct, nginx, the floor, gateway@REF..., this tree."""
    with ExitStack() as stack:
        mocks = start_mocks(stack, paced_chunks=PACED_CHUNKS, paced_interval_ms=500)
        urls = {"direct": mocks.openai}
        urls["nginx"] = stack.enter_context(nginx_proxy(workdir, mocks.openai_port))[0]
        urls[FLOOR] = stack.enter_context(floor_proxy(mocks.openai))
        for ref in refs:
            started = gateway(f"lat-{ref}", mocks, workdir, env=checkout_env(ref, workdir))
            urls[f"gateway@{resolve(ref)}"] = stack.enter_context(started)[0]
        urls["gateway (this tree)"] = stack.enter_context(gateway("lat-now", mocks, workdir, client=THIS_CLIENT))[0]
        paths = {name: f"{url}/v1/chat/completions" for name, url in urls.items()}
        for url in paths.values():
            wrk(url, body(), HEADERS, 1, WARMUP_S)
        p50s: dict[str, list[float]] = {name: [] for name in paths}
        for _ in range(rounds):
            for name, url in paths.items():
                p50s[name].append(wrk(url, body(), HEADERS, 1, duration).p50_ms)
    return p50s


def report(p50s: dict[str, list[float]], command: str, duration: float, load: tuple[float, float]) -> str:
    direct = p50s["direct"]
    added = {name: [p - d for p, d in zip(values, direct, strict=True)] for name, values in p50s.items()}
    when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    lines = [
        f"Run {when}: `{command}` ({len(direct)} interleaved rounds of {duration:.0f} s of wrk -c1 per contender; "
        f"load average {load[0]:.1f} at the start, {load[1]:.1f} at the end).",
        "",
        "| path | p50, median of rounds | added p50 (paired per round), median | range over rounds |",
        "|---|---|---|---|",
    ]
    for name, values in p50s.items():
        if name == "direct":
            lines.append(f"| direct | {statistics.median(values):.3f} ms | | |")
            continue
        a = added[name]
        lines.append(
            f"| {name} | {statistics.median(values):.3f} ms | **{statistics.median(a):+.3f} ms** | "
            f"{min(a):+.3f} to {max(a):+.3f} ms |"
        )
    nginx = statistics.median(added["nginx"])
    over = statistics.median(added["gateway (this tree)"]) - nginx
    floor_over = statistics.median(added[FLOOR]) - nginx
    verdict = "met" if over <= TARGET_OVER_NGINX_MS else "missed"
    lines += [
        "",
        f"Added p50 over nginx's: **{over:+.3f} ms** (target ≤ +{TARGET_OVER_NGINX_MS} ms: {verdict}). "
        f"The floor alone (`gateway/bench/floor.py`) is {floor_over:+.3f} ms over nginx's, which leaves "
        f"{TARGET_OVER_NGINX_MS - floor_over:.3f} ms of the target for the gateway's own work; it uses "
        f"{over - floor_over:.3f} ms.",
    ]
    return "\n".join(lines) + "\n"


def latency_only(refs: list[str], rounds: int, duration: float, workdir: Path, command: str) -> str:
    start = os.getloadavg()[0]
    p50s = measure(refs, rounds, duration, workdir)
    return report(p50s, command, duration, (start, os.getloadavg()[0]))
