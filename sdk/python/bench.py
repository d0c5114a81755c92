"""What the Python SDK adds per call over raw httpx with the same connection settings.

Two measurements of `Client.query` against `httpx.Client.post(...).json()`:
- in-process: both over one `httpx.MockTransport` answering a canned /api/v1/query document, so
  the difference is exactly the SDK's own work (request id, retry loop, typed result);
- loopback: both against a live gateway (`aimm gateway serve`, mock models), calls interleaved,
  medians compared (network and gateway noise included, so less precise).

Run by `make bench`: `PYTHONPATH=sdk/python .venv/bin/python -P sdk/python/bench.py`.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
import timeit
from collections.abc import Callable
from pathlib import Path

import httpx

from aimm_client import Client

TARGET_US = 50.0
ANSWER = {
    "text": "Mock reply: three primary colours are red, yellow and blue.",
    "model": "mock-fast",
    "provider": "mock",
    "usage": {"prompt_tokens": 12, "completion_tokens": 14, "total_tokens": 26, "total_cost": 0.000027},
    "latency_ms": 0.4,
    "request_id": "bench",
    "finish_reason": "stop",
}
BODY = {"prompt": "Name three primary colours", "model": "mock-fast"}


def _raw_client(base_url: str, key: str, transport: httpx.BaseTransport | None) -> httpx.Client:
    # The settings the SDK gives its own httpx.Client (see aimm_client._base.client_kwargs).
    return httpx.Client(
        base_url=base_url,
        headers={"authorization": f"Bearer {key}", "accept": "application/json"},
        timeout=httpx.Timeout(60.0),
        limits=httpx.Limits(max_connections=100, max_keepalive_connections=20),
        transport=transport,
    )


def _pair(base_url: str, key: str, transport: httpx.BaseTransport | None) -> tuple[Callable[[], object], ...]:
    raw, sdk = _raw_client(base_url, key, transport), Client(base_url, key, transport=transport, max_retries=0)
    return (lambda: raw.post("/api/v1/query", json=BODY).json()), (lambda: sdk.query(BODY["prompt"], model="mock-fast"))


def in_process(number: int = 2000, repeat: int = 15) -> dict[str, float]:
    payload = json.dumps(ANSWER).encode()
    transport = httpx.MockTransport(
        lambda request: httpx.Response(200, content=payload, headers={"content-type": "application/json"})
    )
    raw, sdk = _pair("http://gateway.invalid", "k", transport)
    best = {"raw": float("inf"), "sdk": float("inf")}
    for _ in range(repeat):  # alternate the two so machine load hits both alike
        for name, fn in (("raw", raw), ("sdk", sdk)):
            # CPU time of this process: what the SDK costs, whatever else the machine is doing.
            timer = timeit.Timer(fn, timer=time.process_time)
            best[name] = min(best[name], timer.timeit(number=number) / number * 1e6)
    return {**best, "added": best["sdk"] - best["raw"]}


def loopback(calls: int = 2000) -> dict[str, float]:
    from aimm_gateway.bench.procs import aimm, free_port, process

    port = free_port()
    root = Path(__file__).resolve().parents[2]
    env = {"AIMM_API_KEY": "sk-bench", "AIMM_ADMIN_TOKEN": "admin-bench", "OPENAI_API_KEY": "", "ANTHROPIC_API_KEY": ""}
    with tempfile.TemporaryDirectory() as tmp:
        args = aimm("gateway", "serve", "--config", str(root / "examples/demo.yaml"), "--port", str(port))
        with process(args, f"http://127.0.0.1:{port}/ready", env=env, log=Path(tmp) / "gw.log"):
            raw, sdk = _pair(f"http://127.0.0.1:{port}", "sk-bench", None)
            for _ in range(200):  # warm up both connection pools and the gateway
                raw(), sdk()
            samples: dict[str, list[float]] = {"raw": [], "sdk": []}
            pairs = (("raw", raw), ("sdk", sdk))
            for i in range(calls):
                for name, fn in pairs if i % 2 else pairs[::-1]:  # alternate who goes first
                    start = time.perf_counter()
                    fn()
                    samples[name].append((time.perf_counter() - start) * 1e6)
    med = {name: statistics.median(values) for name, values in samples.items()}
    return {**med, "added": med["sdk"] - med["raw"]}


def _row(name: str, m: dict[str, float]) -> str:
    return f"| {name} | {m['raw']:.1f} | {m['sdk']:.1f} | {m['added']:.1f} |"


def report(inproc: dict[str, float], live: dict[str, float] | None) -> str:
    lines = [
        "### Python SDK overhead per call (target ≤ 50 µs over raw httpx)",
        "",
        "| measurement | raw httpx µs | SDK µs | SDK adds µs |",
        "|---|---:|---:|---:|",
        _row("in-process (MockTransport, CPU time, best of 15 alternating runs)", inproc),
    ]
    if live is not None:
        lines.append(_row("loopback gateway (wall time, median of interleaved calls)", live))
    verdict = "PASS" if inproc["added"] <= TARGET_US else "FAIL"
    lines += ["", f"{verdict}: the SDK adds {inproc['added']:.1f} µs per call (in-process measurement)."]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--no-live", action="store_true", help="skip the loopback measurement")
    parser.add_argument("--out", type=Path, help="also write the report to this file")
    args = parser.parse_args()
    inproc = in_process()
    live = None if args.no_live else loopback()
    text = report(inproc, live)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")
    return 0 if inproc["added"] <= TARGET_US else 1


if __name__ == "__main__":
    sys.exit(main())
