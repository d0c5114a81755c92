"""`aimm bench`: the gateway measured side by side with calling the mock upstream directly.

Everything runs on loopback in one run, so figures are ratios and differences under the same
machine load: added latency at concurrency 1, the highest RPS whose added p99 stays within
10 ms, added time-to-first-token, and the server/client combinations the choice rests on.
"""

from __future__ import annotations

import argparse
import logging
import os
import platform
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import yaml

from aimm_gateway.bench.cost import cost_report, measure_cost, stage_micro
from aimm_gateway.bench.loadgen import WrkResult, have_wrk, ttft_ms, wrk
from aimm_gateway.bench.micro import bench_translation
from aimm_gateway.bench.procs import GATEWAY_CPU, LOAD_CPU, aimm, cpu_seconds, free_port, pinned, process
from aimm_gateway.routing.bench import bench_plan
from aimm_gateway.telemetry.bench import BASELINE as TELEMETRY_BASELINE
from aimm_gateway.telemetry.bench import bench_telemetry

KEY = "sk-bench"
CHAT = {
    "model": "m",
    "messages": [{"role": "user", "content": "Say hello to the benchmark"}],
    "max_tokens": 64,
}
CONCURRENCY = (1, 4, 8, 16, 32, 64)
ADDED_P99_LIMIT_MS = 10.0


@dataclass
class Variant:
    name: str
    server: str
    client: str
    results: dict[int, WrkResult] = field(default_factory=dict)
    ttft: tuple[float, float] | None = None


def _config(openai_url: str, anthropic_url: str, client: str, port: int) -> dict[str, Any]:
    model = {
        "provider": "openai_compatible",
        "base_url": f"{openai_url}/v1",
        "pricing": {"input_per_1k": "0.001", "output_per_1k": "0.002"},
    }
    return {
        "server": {"host": "127.0.0.1", "port": port, "upstream_client": client},
        "auth": {"api_keys": [{"name": "bench", "key": {"env": "AIMM_BENCH_KEY"}}]},
        "models": [
            {"name": "m", **model},
            {"name": "m2", **model, "model": "m"},
            {"name": "m3", **model, "model": "m"},
            {
                "name": "claude",
                "provider": "anthropic",
                "base_url": anthropic_url,
                "api_key": {"env": "AIMM_BENCH_KEY"},
            },
        ],
        "routes": [
            {
                "name": "routed",
                "algorithm": "intelligent",
                "targets": [{"model": "m"}, {"model": "m2"}, {"model": "m3"}],
            },
        ],
    }


@contextmanager
def _gateway(variant: Variant, openai_url: str, anthropic_url: str, workdir: Path) -> Iterator[tuple[str, int]]:
    port = free_port()
    path = workdir / f"{variant.name}.yaml"
    path.write_text(yaml.safe_dump(_config(openai_url, anthropic_url, variant.client, port)))
    url = f"http://127.0.0.1:{port}"
    with process(
        pinned(
            GATEWAY_CPU, aimm("gateway", "serve", "--config", str(path), "--server", variant.server, "--workers", "1")
        ),
        f"{url}/health",
        env={"AIMM_BENCH_KEY": KEY},
        log=workdir / f"{variant.name}.log",
    ) as proc:
        yield url, proc.pid


def _body(**overrides: Any) -> bytes:
    return orjson.dumps({**CHAT, **overrides})


HEADERS = {"Content-Type": "application/json", "Authorization": f"Bearer {KEY}"}


def _sweep(url: str, duration: float, levels: tuple[int, ...], body: bytes) -> dict[int, WrkResult]:
    out = {}
    for c in levels:
        wrk(url, body, HEADERS, c, min(2.0, duration))  # warm-up at this level
        out[c] = wrk(url, body, HEADERS, c, duration)
    return out


def run(args: argparse.Namespace) -> str:
    if not have_wrk():
        raise SystemExit("aimm bench needs wrk (Debian package 'wrk'): apt-get install -y wrk")
    duration = 2.0 if args.quick else args.duration
    levels = (1, 8, 32) if args.quick else CONCURRENCY
    variants = [
        Variant("uvicorn+aiohttp", "uvicorn", "aiohttp"),
        Variant("uvicorn+httpx", "uvicorn", "httpx"),
        Variant("granian+aiohttp", "granian", "aiohttp"),
    ]
    if args.quick:
        variants = variants[:1]
    extra: dict[str, Any] = {}
    with ExitStack() as stack, tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        ports = free_port(), free_port()
        openai_url, anthropic_url = (f"http://127.0.0.1:{p}" for p in ports)
        stack.enter_context(
            process(
                pinned(LOAD_CPU, aimm("mock-provider", "--format", "openai", "--port", str(ports[0]))),
                f"{openai_url}/v1/models",
            )
        )
        stack.enter_context(
            process(
                pinned(LOAD_CPU, aimm("mock-provider", "--format", "anthropic", "--port", str(ports[1]))),
                f"{anthropic_url}/v1/models",
            )
        )
        direct_url = f"{openai_url}/v1/chat/completions"
        direct = _sweep(direct_url, duration, levels, _body())
        direct_ttft = ttft_ms(direct_url, _body(stream=True), HEADERS)
        for variant in variants:
            with _gateway(variant, openai_url, anthropic_url, workdir) as (gw, pid):
                gw_url = f"{gw}/v1/chat/completions"
                variant.results = _sweep(gw_url, duration, levels, _body())
                variant.ttft = ttft_ms(gw_url, _body(stream=True), HEADERS)
                if variant is variants[0]:
                    extra["routed"], extra["fixed"] = _cpu_compare(gw_url, pid, duration, ("routed", "m"))
                    extra["translated"], extra["passthrough"] = _cpu_compare(gw_url, pid, duration, ("claude", "m"))
        extra["micro"] = _micro()
        cost = cost_report(*measure_cost(openai_url, workdir, duration), stage_micro())
    return _report(direct, direct_ttft, variants, extra, levels, duration) + "\n".join(cost) + "\n"


ROUTING_CONCURRENCY = 4  # saturates the worker without the 2-core scheduler noise of higher levels


@dataclass
class CpuPerRequest:
    """The gateway process's own CPU time per request: far steadier than RPS on a shared 2-core box."""

    us: float
    rps: float


def _cpu_compare(url: str, pid: int, duration: float, models: tuple[str, str], rounds: int = 5) -> list[CpuPerRequest]:
    """Interleaved runs against two models, the median CPU per request of each."""
    samples: dict[str, list[CpuPerRequest]] = {m: [] for m in models}
    for _ in range(rounds):
        for model in models:
            before = cpu_seconds(pid)
            result = wrk(url, _body(model=model), HEADERS, ROUTING_CONCURRENCY, duration)
            cpu = cpu_seconds(pid) - before
            samples[model].append(CpuPerRequest(cpu / result.requests * 1e6, result.rps))
    return [sorted(samples[m], key=lambda x: x.us)[rounds // 2] for m in models]


def _micro() -> dict[str, Any]:
    """In-process microbenchmarks of hot-path pieces (routing decision, translation)."""
    out: dict[str, Any] = {}
    out["routing"] = bench_plan(n_targets=50)
    out["translation"] = bench_translation()
    out["telemetry"] = bench_telemetry()
    return out


def _max_rps_within(direct: dict[int, WrkResult], gw: dict[int, WrkResult]) -> tuple[float, int | None]:
    best, at = 0.0, None
    for c, r in gw.items():
        if r.errors == 0 and r.p99_ms - direct[c].p99_ms <= ADDED_P99_LIMIT_MS and r.rps > best:
            best, at = r.rps, c
    return best, at


def _report(
    direct: dict[int, WrkResult],
    direct_ttft: tuple[float, float],
    variants: list[Variant],
    extra: dict[str, Any],
    levels: tuple[int, ...],
    duration: float,
) -> str:
    lines = [
        "## Results",
        "",
        f"Run {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} on {platform.machine()}, "
        f"{os.cpu_count()} cores, Python {platform.python_version()}; wrk -t1, {duration:.0f} s per level; "
        "mock upstream with no added latency; gateway pinned to CPU 0, mocks and wrk to CPU 1.",
        "",
        "### Added latency at concurrency 1 (gateway minus direct to the mock)",
        "",
        "| variant | direct p50 | gateway p50 | added p50 | direct p99 | gateway p99 | added p99 |",
        "|---|---|---|---|---|---|---|",
    ]
    d1 = direct[1]
    for v in variants:
        g = v.results[1]
        lines.append(
            f"| {v.name} | {d1.p50_ms:.3f} ms | {g.p50_ms:.3f} ms | **{g.p50_ms - d1.p50_ms:.3f} ms** | "
            f"{d1.p99_ms:.3f} ms | {g.p99_ms:.3f} ms | {g.p99_ms - d1.p99_ms:.3f} ms |"
        )
    lines += ["", "### Throughput by concurrency (one gateway worker)", ""]
    header = (
        "| concurrency | direct RPS | direct p99 | " + " | ".join(f"{v.name} RPS | added p99" for v in variants) + " |"
    )
    lines += [header, "|" + "---|" * (3 + 2 * len(variants))]
    for c in levels:
        row = f"| {c} | {direct[c].rps:,.0f} | {direct[c].p99_ms:.2f} ms | "
        row += " | ".join(
            f"{v.results[c].rps:,.0f} | {v.results[c].p99_ms - direct[c].p99_ms:.2f} ms" for v in variants
        )
        lines.append(row + " |")
    lines += ["", f"### Highest RPS with added p99 ≤ {ADDED_P99_LIMIT_MS:.0f} ms and zero errors", ""]
    for v in variants:
        rps, at = _max_rps_within(direct, v.results)
        lines.append(f"- {v.name}: **{rps:,.0f} RPS** (at concurrency {at})")
    lines += [
        "",
        "### Streaming: time to first token at concurrency 1",
        "",
        "| path | p50 | p99 | added p50 |",
        "|---|---|---|---|",
    ]
    lines.append(f"| direct | {direct_ttft[0]:.3f} ms | {direct_ttft[1]:.3f} ms | |")
    for v in variants:
        assert v.ttft is not None
        lines.append(
            f"| {v.name} | {v.ttft[0]:.3f} ms | {v.ttft[1]:.3f} ms | **{v.ttft[0] - direct_ttft[0]:.3f} ms** |"
        )
    if "routed" in extra:
        routed, fixed = extra["routed"], extra["fixed"]
        translated, passthrough = extra["translated"], extra["passthrough"]
        lines += [
            "",
            "### Routing and translation (uvicorn+aiohttp)",
            "",
            f"- Gateway CPU per request at concurrency {ROUTING_CONCURRENCY} (median of 5 interleaved runs), "
            f"route `intelligent` over 3 targets vs one fixed model: {routed.us:.0f} µs vs {fixed.us:.0f} µs "
            f"(routing costs **{(routed.us / fixed.us - 1) * 100:.1f}%**; RPS {routed.rps:,.0f} vs {fixed.rps:,.0f})",
            f"- Gateway CPU per request at concurrency {ROUTING_CONCURRENCY} (median of 5 interleaved runs), "
            f"OpenAI client → Anthropic upstream (translated) vs → OpenAI upstream (pass-through): "
            f"{translated.us:.0f} µs vs {passthrough.us:.0f} µs (translation adds "
            f"**{translated.us - passthrough.us:.0f} µs** per request)",
        ]
    lines += _micro_lines(extra.get("micro", {}))
    return "\n".join(lines) + "\n"


def _micro_lines(micro: dict[str, Any]) -> list[str]:
    """The in-process microbenchmarks' part of the report."""
    lines: list[str] = []
    if micro.get("routing"):
        lines += [
            "",
            "### One routing decision over 50 targets (in-process)",
            "",
            "| algorithm | µs per decision |",
            "|---|---|",
        ]
        for name, us in micro["routing"].items():
            lines.append(f"| {name} | {us:.2f} |")
    if micro.get("translation"):
        lines += ["", "### Translation cost per request (in-process)", ""]
        for name, us in micro["translation"].items():
            lines.append(f"- {name}: {us:.1f} µs")
    if micro.get("telemetry"):
        lines += [
            "",
            "### Request telemetry (in-process CPU per plain request at concurrency 1, best of 5 interleaved)",
            "",
            "Target: the default set (metrics + access log, tracing off) adds ≤ 50 µs.",
            "",
            "| variant | µs per request | added |",
            "|---|---|---|",
        ]
        base = micro["telemetry"][TELEMETRY_BASELINE]
        for name, us in micro["telemetry"].items():
            added = "" if name == TELEMETRY_BASELINE else f"{us - base:+.1f} µs"
            lines.append(f"| {name} | {us:.1f} | {added} |")
    return lines


def main(args: argparse.Namespace) -> int:
    logging.getLogger("httpx").setLevel(logging.WARNING)
    report = run(args)
    print(report)
    if args.out:
        path = Path(args.out)
        text = path.read_text() if path.exists() else "# Benchmarks\n"
        marker = "<!-- bench-results -->"
        head = text.split(marker)[0] if marker in text else text.rstrip() + "\n\n"
        path.write_text(head + marker + "\n\n" + report)
        print(f"wrote {path}", file=sys.stderr)
    return 0
