"""`aimm bench`: the gateway side by side with calling the mock upstream directly and with nginx.

Everything runs on loopback in one run, so figures are ratios and differences under the same
machine load: added latency at concurrency 1, RPS by concurrency against nginx `proxy_pass`,
CPU per request (A/B against another commit with `--ab REF`), stream relay throughput and
capacity (thousands of paced streams on one worker), and in-process microbenchmarks.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import sys
import tempfile
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import orjson
import yaml

from aimm_gateway.bench import cpu, report
from aimm_gateway.bench.ab import checkout_env, resolve
from aimm_gateway.bench.cost import cost_report, measure_cost, stage_micro
from aimm_gateway.bench.loadgen import WrkResult, have_wrk, ttft_ms, wrk
from aimm_gateway.bench.micro import bench_translation
from aimm_gateway.bench.nginx import have_nginx, nginx_proxy, worker_pid
from aimm_gateway.bench.procs import GATEWAY_CPU, LOAD_CPU, aimm, free_port, pinned, process
from aimm_gateway.bench.security import bench_security
from aimm_gateway.bench.security_e2e import measure_security, security_report
from aimm_gateway.bench.stream_bench import PACED_CHUNKS, Mocks, capacity, relay_throughput, start_mocks
from aimm_gateway.routing.bench import bench_plan
from aimm_gateway.telemetry.bench import bench_telemetry

KEY = "sk-bench"
HEADERS = {"Content-Type": "application/json", "Authorization": f"Bearer {KEY}"}
CHAT = {"model": "m", "messages": [{"role": "user", "content": "Say hello to the benchmark"}], "max_tokens": 64}
CONCURRENCY = (1, 4, 8, 16, 32, 64)
ROUTING_CONCURRENCY = 4  # saturates the worker without the 2-core scheduler noise of higher levels
AB_CONCURRENCY = 16
THIS_CLIENT = "h1"  # the upstream client this tree is measured with (the default; an A/B ref keeps its own)


@dataclass
class Variant:
    name: str
    server: str
    client: str | None  # None: the config's default (what a deployment gets)
    results: dict[int, WrkResult] = field(default_factory=dict)
    ttft: tuple[float, float] | None = None


def body(**overrides: Any) -> bytes:
    return orjson.dumps({**CHAT, **overrides})


def gateway_config(mocks: Mocks, client: str | None, port: int) -> dict[str, Any]:
    def openai(url: str, name: str, **extra: Any) -> dict[str, Any]:
        return {
            "name": name,
            "provider": "openai_compatible",
            "base_url": f"{url}/v1",
            "model": "m",
            "pricing": {"input_per_1k": "0.001", "output_per_1k": "0.002"},
            **extra,
        }

    return {
        "server": {
            "host": "127.0.0.1",
            "port": port,
            "max_connections_per_upstream": 4096,
            **({"upstream_client": client} if client else {}),
        },
        "auth": {"api_keys": [{"name": "bench", "key": {"env": "AIMM_BENCH_KEY"}}]},
        "models": [
            openai(mocks.openai, "m"),
            openai(mocks.openai, "m2"),
            openai(mocks.openai, "m3"),
            openai(mocks.long_stream, "long"),
            openai(mocks.paced, "paced"),
            {
                "name": "claude",
                "provider": "anthropic",
                "base_url": mocks.anthropic,
                "api_key": {"env": "AIMM_BENCH_KEY"},
            },
        ],
        "routes": [
            {
                "name": "routed",
                "algorithm": "intelligent",
                "targets": [{"model": "m"}, {"model": "m2"}, {"model": "m3"}],
            }
        ],
    }


@contextmanager
def gateway(
    name: str,
    mocks: Mocks,
    workdir: Path,
    server: str = "uvicorn",
    client: str | None = None,
    env: dict[str, str] | None = None,
) -> Iterator[tuple[str, int]]:
    """One gateway worker pinned to the gateway's CPU; yields its base URL and pid."""
    port = free_port()
    path = workdir / f"{name}.yaml"
    path.write_text(yaml.safe_dump(gateway_config(mocks, client, port)))
    url = f"http://127.0.0.1:{port}"
    args = aimm("gateway", "serve", "--config", str(path), "--server", server, "--workers", "1")
    with process(
        pinned(GATEWAY_CPU, args),
        f"{url}/health",
        env={"AIMM_BENCH_KEY": KEY, **(env or {})},
        log=workdir / f"{name}.log",
    ) as proc:
        yield url, proc.pid


def sweep(url: str, duration: float, levels: tuple[int, ...], payload: bytes) -> dict[int, WrkResult]:
    out = {}
    for c in levels:
        wrk(url, payload, HEADERS, c, min(2.0, duration))  # warm-up at this level
        out[c] = wrk(url, payload, HEADERS, c, duration)
    return out


def run(args: argparse.Namespace) -> str:
    if not have_wrk() or not have_nginx():
        raise SystemExit("aimm bench needs wrk and nginx: bash hack/system-deps.sh wrk nginx:nginx-light")
    with contextlib.suppress(OSError, ValueError):
        os.sched_setaffinity(0, {int(LOAD_CPU)})  # this process is a load generator too (TTFT, streams)
    duration = 2.0 if args.quick else args.duration
    levels = (1, 8, 64) if args.quick else CONCURRENCY
    variants = [Variant("uvicorn+h1 (default)", "uvicorn", "h1")]
    if not args.quick:
        variants += [
            Variant("uvicorn+aiohttp", "uvicorn", "aiohttp"),
            Variant("uvicorn+httpx", "uvicorn", "httpx"),
            Variant("granian+h1", "granian", "h1"),
        ]
    out: dict[str, Any] = {"duration": duration, "levels": levels, "variants": variants}
    with ExitStack() as stack, tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        mocks = start_mocks(stack, paced_chunks=PACED_CHUNKS, paced_interval_ms=500)
        direct_url = f"{mocks.openai}/v1/chat/completions"
        out["direct"] = sweep(direct_url, duration, levels, body())
        out["direct_ttft"] = ttft_ms(direct_url, body(stream=True), HEADERS)
        with nginx_proxy(workdir, mocks.openai_port) as (ng, _):
            out["nginx"] = sweep(f"{ng}/v1/chat/completions", duration, levels, body())
            out["nginx_ttft"] = ttft_ms(f"{ng}/v1/chat/completions", body(stream=True), HEADERS)
        for variant in variants:
            with gateway(variant.name, mocks, workdir, variant.server, variant.client) as (gw, pid):
                gw_url = f"{gw}/v1/chat/completions"
                variant.results = sweep(gw_url, duration, levels, body())
                variant.ttft = ttft_ms(gw_url, body(stream=True), HEADERS)
                if variant is variants[0]:
                    out["routing"] = _model_compare(gw_url, pid, duration, ("routed", "m"))
                    out["translation"] = _model_compare(gw_url, pid, duration, ("claude", "m"))
        out["ab"] = _ab(args.ab or [], _clients(args), mocks, workdir, duration, rounds=3 if args.quick else 5)
        n = 200 if args.quick else args.streams
        out["capacity"] = capacity(mocks, lambda: gateway("capacity", mocks, workdir, client=THIS_CLIENT), HEADERS, n)
        out["micro"] = {
            "routing": bench_plan(n_targets=50),
            "translation": bench_translation(),
            "telemetry": bench_telemetry(),
            "security": bench_security(),
        }
        out["cost"] = cost_report(measure_cost(mocks.openai, workdir, duration), stage_micro())
        security = security_report(measure_security(mocks.openai, workdir, duration), out["micro"]["security"])
    return report.render(out) + "\n".join(security) + "\n"


def _model_compare(url: str, pid: int, duration: float, models: tuple[str, str]) -> list[cpu.CpuPerRequest]:
    loads = {m: (pid, partial(wrk, url, body(model=m), HEADERS, ROUTING_CONCURRENCY, duration)) for m in models}
    result = cpu.interleaved(loads, rounds=5)
    return [result[m] for m in models]


def _clients(args: argparse.Namespace) -> tuple[str, ...]:
    return tuple(c.strip() for c in args.clients.split(",")) if args.clients else (THIS_CLIENT,)


def _ab(
    refs: list[str], clients: tuple[str, ...], mocks: Mocks, workdir: Path, duration: float, rounds: int
) -> dict[str, Any]:
    """Interleaved rounds: nginx, the gateway at each ref (its default client) and this tree, on the same core.

    This tree runs once per upstream client in `clients` ("gateway (this tree)" if only one).
    Plain requests at concurrency 16 (CPU per request) and 64 (RPS), and streamed replies of
    the long-stream mock (chunks relayed per second, CPU per chunk).
    """
    with ExitStack() as stack:
        ng, master = stack.enter_context(nginx_proxy(workdir, mocks.openai_port))
        contenders = {"nginx": (ng, worker_pid(master))}
        for spec in refs:  # REF or REF:CLIENT (a ref's default client unless one is named)
            ref, _, client = spec.partition(":")
            env = checkout_env(ref, workdir)
            name = f"gateway@{resolve(ref)}" + (f" ({client})" if client else "")
            started = gateway(f"ab-{ref}-{client}", mocks, workdir, client=client or None, env=env)
            contenders[name] = stack.enter_context(started)
        for client in clients:
            name = "gateway (this tree)" if len(clients) == 1 else f"gateway (this tree, {client})"
            contenders[name] = stack.enter_context(gateway(f"ab-now-{client}", mocks, workdir, client=client))

        def plain(c: int) -> dict[str, tuple[int, Callable[[], WrkResult]]]:
            return {
                k: (pid, partial(wrk, f"{u}/v1/chat/completions", body(), HEADERS, c, duration))
                for k, (u, pid) in contenders.items()
            }

        cpu16 = cpu.interleaved(plain(AB_CONCURRENCY), rounds)
        rps64 = cpu.interleaved(plain(64), rounds)
        gateways = {k: v for k, v in contenders.items() if k != "nginx"}
        relay, relay_cpu = relay_throughput(gateways, mocks, HEADERS, duration, rounds)
    return {"ref": refs[0] if refs else None, "cpu16": cpu16, "rps64": rps64, "relay": relay, "relay_cpu": relay_cpu}


def _ab_only(args: argparse.Namespace) -> str:
    """`aimm bench --ab-only`: the interleaved A/B alone (a few minutes), with the command in the report."""
    if not have_wrk() or not have_nginx():
        raise SystemExit("aimm bench needs wrk and nginx: bash hack/system-deps.sh wrk nginx:nginx-light")
    with contextlib.suppress(OSError, ValueError):
        os.sched_setaffinity(0, {int(LOAD_CPU)})
    with ExitStack() as stack, tempfile.TemporaryDirectory() as tmp:
        mocks = start_mocks(stack, paced_chunks=PACED_CHUNKS, paced_interval_ms=500)
        ab = _ab(args.ab or [], _clients(args), mocks, Path(tmp), args.duration, args.rounds)
    return report.ab_only(ab, " ".join(["aimm", "bench", *sys.argv[2:]]), args.rounds, args.duration)


def main(args: argparse.Namespace) -> int:
    logging.getLogger("httpx").setLevel(logging.WARNING)
    if args.flame is not None:
        from aimm_gateway.bench.profile import flame

        flame(Path(args.flame), stream=args.flame_stream)
        return 0
    if args.stream_memory is not None:
        from aimm_gateway.bench.stream_memory import profile

        print(profile(args.stream_memory, args.client))
        return 0
    if args.ab_only:
        text, marker = _ab_only(args), "ab-results"
    elif args.capacity_only:
        text, marker = _capacity_only(args), "capacity-results"
    elif args.latency_only:
        text, marker = _latency_only(args), "latency-results"
    elif args.security_only:
        text, marker = _security_only(args), "security-results"
    elif args.scrape_only:
        text, marker = _scrape_only(args), "scrape-results"
    elif args.iface:
        from aimm_gateway.bench import iface

        text, marker = iface.report(iface.compare()), "iface-results"
    elif args.soak is not None:
        from aimm_gateway.bench.soak import run_soak

        text, marker = run_soak(args.soak), "soak-results"
    else:
        text, marker = run(args), "bench-results"
    print(text)
    if args.out:
        write_section(Path(args.out), marker, text)
        print(f"wrote {args.out}", file=sys.stderr)
    return 0


def _latency_only(args: argparse.Namespace) -> str:
    """`aimm bench --latency-only`: added p50 at concurrency 1, interleaved rounds (bench/latency.py)."""
    from aimm_gateway.bench.latency import latency_only

    if not have_wrk() or not have_nginx():
        raise SystemExit("aimm bench needs wrk and nginx: bash hack/system-deps.sh wrk nginx:nginx-light")
    with contextlib.suppress(OSError, ValueError):
        os.sched_setaffinity(0, {int(LOAD_CPU)})
    command = " ".join(["aimm", "bench", *sys.argv[2:]])
    with tempfile.TemporaryDirectory() as tmp:
        return latency_only(args.ab or [], args.rounds, args.duration, Path(tmp), command)


@contextmanager
def _wrk_rig() -> Iterator[tuple[Mocks, Path]]:
    """wrk required, this process on the load core, the mock upstreams and a scratch directory."""
    if not have_wrk():
        raise SystemExit("aimm bench needs wrk: bash hack/system-deps.sh wrk")
    with contextlib.suppress(OSError, ValueError):
        os.sched_setaffinity(0, {int(LOAD_CPU)})
    with ExitStack() as stack, tempfile.TemporaryDirectory() as tmp:
        yield start_mocks(stack, paced_chunks=PACED_CHUNKS, paced_interval_ms=500), Path(tmp)


def _security_only(args: argparse.Namespace) -> str:
    """`aimm bench --security-only`: auth + limits + guards end to end (interleaved) and in-process."""
    with _wrk_rig() as (mocks, tmp):
        rows = measure_security(mocks.openai, tmp, args.duration, args.rounds)
    command = " ".join(["aimm", "bench", *sys.argv[2:]])
    lines = security_report(rows, bench_security(), args.rounds)
    return "\n".join([f"Command: `{command}`", *lines]) + "\n"


def _scrape_only(args: argparse.Namespace) -> str:
    """`aimm bench --scrape-only`: a Prometheus scrape of a many-model worker, and the stall it causes."""
    from aimm_gateway.bench.scrape import measure
    from aimm_gateway.bench.scrape import report as scrape_report

    with _wrk_rig() as (mocks, tmp):
        trees = measure(args.ab or [], args.models, args.rounds, args.duration, tmp, mocks.openai)
    return scrape_report(trees, args.models, args.rounds, " ".join(["aimm", "bench", *sys.argv[2:]]))


def _capacity_only(args: argparse.Namespace) -> str:
    """The paced-streams capacity run; with `--ab REF[:CLIENT]` each ref's gateway first, in the same run."""
    with contextlib.suppress(OSError, ValueError):
        os.sched_setaffinity(0, {int(LOAD_CPU)})
    sections = []
    with ExitStack() as stack, tempfile.TemporaryDirectory() as tmp:
        mocks = start_mocks(stack, paced_chunks=PACED_CHUNKS, paced_interval_ms=500)
        for spec in args.ab or []:
            ref, _, client = spec.partition(":")
            env = checkout_env(ref, Path(tmp))
            start = partial(gateway, f"cap-{ref}", mocks, Path(tmp), client=client or None, env=env)
            name = f"gateway@{resolve(ref)}" + (f" ({client})" if client else "")
            sections.append(_capacity_section(name, capacity(mocks, start, HEADERS, args.streams)))
        start = partial(gateway, "capacity", mocks, Path(tmp), client=THIS_CLIENT)
        sections.append(_capacity_section("this tree", capacity(mocks, start, HEADERS, args.streams)))
    return "\n".join(sections)


def _capacity_section(name: str, cap: dict[str, Any]) -> str:
    text = report.capacity_only({"duration": 0, "capacity": cap}, name, " ".join(["aimm", "bench", *sys.argv[2:]]))
    print(text, file=sys.stderr, flush=True)  # each as it ends: a later failure keeps the earlier ones
    return text


def write_section(path: Path, marker: str, text: str) -> None:
    """Replace the text between `<!-- marker -->` and `<!-- /marker -->` (appended if missing)."""
    start, end = f"<!-- {marker} -->", f"<!-- /{marker} -->"
    existing = path.read_text() if path.exists() else "# Benchmarks\n"
    if start in existing:
        head, rest = existing.split(start, 1)
        tail = rest.split(end, 1)[1] if end in rest else "\n"  # an unterminated section runs to the end
    else:
        head, tail = existing.rstrip() + "\n\n", "\n"
    path.write_text(f"{head}{start}\n\n{text}\n{end}{tail}")
