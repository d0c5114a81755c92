"""Gateway variants side by side on the hot path: what a feature adds to one plain request.

Several gateways (one per config variant) against the same mock upstream, measured in
interleaved rounds (A, B, C, A, B, C, ...) at concurrency 1, so a burst of machine noise hits
every variant alike; the median of the rounds is reported, with the spread (min-max) of p50.
Gateway CPU per request comes from /proc. Variants that use Redis get a real `redis-server`;
their Redis commands per request are counted separately (MONITOR, outside the timed rounds),
so script-internal commands are not mistaken for round trips. Used by `cost.py` (usage store,
budgets, cache) and `security_e2e.py` (auth, limits, guards).
"""

from __future__ import annotations

import hashlib
import shutil
import socket
import statistics
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Iterator, Mapping
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from aimm_gateway.bench.loadgen import WrkResult, wrk
from aimm_gateway.bench.procs import GATEWAY_CPU, aimm, cpu_seconds, free_port, pinned, process
from aimm_gateway.state import redis_scripts

KEY = "sk-bench"
HEADERS = {"Content-Type": "application/json", "Authorization": f"Bearer {KEY}"}
BODY = {"model": "m", "messages": [{"role": "user", "content": "Say hello to the benchmark"}], "max_tokens": 64}
ROUNDS = 3
COUNT_SECONDS = 1.0  # the Redis command count's own (untimed) run


@dataclass
class Row:
    name: str
    p50_ms: float
    p99_ms: float
    rps: float
    cpu_us: float  # gateway CPU per request
    p50_spread: tuple[float, float]  # min and max p50 over the rounds
    redis: dict[str, float] | None = None  # Redis commands sent per request, by name (None: no Redis)

    @property
    def redis_per_request(self) -> float | None:
        return sum(self.redis.values()) if self.redis is not None else None


def base_config(openai_url: str, port: int, extra: dict[str, Any]) -> dict[str, Any]:
    """One model on the mock upstream, one config key; `extra` adds the variant's features."""
    model = {"provider": "openai_compatible", "base_url": f"{openai_url}/v1"}
    return {
        "server": {"host": "127.0.0.1", "port": port},
        "auth": {"api_keys": [{"name": "bench", "key": {"env": "AIMM_BENCH_KEY"}}]},
        "models": [{"name": "m", **model, "pricing": {"input_per_1k": "0.001", "output_per_1k": "0.002"}}],
        **extra,
    }


REDIS_STATE = {"redis": {"url": {"env": "AIMM_BENCH_REDIS"}, "timeout_ms": 200}}  # a variant's `state:`


@contextmanager
def redis_server(workdir: Path) -> Iterator[str | None]:
    """A throwaway redis-server on loopback (None when it is not installed)."""
    binary = shutil.which("redis-server")
    if binary is None:
        yield None
        return
    port = free_port()
    args = [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--dir", str(workdir)]
    proc = subprocess.Popen(pinned(GATEWAY_CPU, args), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), 0.2).close()
                break
            except OSError:
                time.sleep(0.05)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        proc.terminate()
        proc.wait(10)


def _script_names() -> dict[str, str]:
    """SHA1 → name of the gateway's Lua scripts, so EVALSHA calls are reported by script."""
    return {
        hashlib.sha1(text.encode()).hexdigest(): name  # Redis names scripts by SHA1
        for name, text in vars(redis_scripts).items()
        if name.isupper() and isinstance(text, str) and "redis.call" in text
    }


def parse_monitor_line(line: str, scripts: Mapping[str, str]) -> str | None:
    """The command a client sent, from one MONITOR line; None for commands run inside a script.

    `+1764.123 [0 127.0.0.1:5678] "EVALSHA" "<sha>" ...` → `EVALSHA HIT_MANY`; `[0 lua] ...` → None.
    """
    if "[" not in line or "] " not in line:
        return None
    source, _, rest = line.partition("[")[2].partition("] ")
    if source.endswith(" lua") or not rest.startswith('"'):
        return None
    words = rest.split('"')
    command = words[1].upper()
    if command == "EVALSHA" and len(words) > 3:
        return f"EVALSHA {scripts.get(words[3], words[3][:8])}"
    return command


def count_commands(redis_url: str, load: Any) -> tuple[Counter[str], int]:
    """Commands clients sent while `load()` ran (MONITOR on its own connection), and its requests."""
    host, port = redis_url.removeprefix("redis://").split("/")[0].split(":")
    sock = socket.create_connection((host, int(port)), 5)
    sock.sendall(b"MONITOR\r\n")
    seen: Counter[str] = Counter()
    scripts = _script_names()
    stop = threading.Event()

    def read() -> None:
        buffer = b""
        sock.settimeout(0.2)
        while not stop.is_set():
            try:
                chunk = sock.recv(65536)
            except TimeoutError:
                continue
            if not chunk:
                return
            buffer += chunk
            *lines, buffer = buffer.split(b"\r\n")
            for raw in lines:
                name = parse_monitor_line(raw.decode(errors="replace"), scripts)
                if name is not None:
                    seen[name] += 1

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        time.sleep(0.2)  # MONITOR is on before the load starts
        result: WrkResult = load()
        time.sleep(0.5)  # the settles that run after the last answers
    finally:
        stop.set()
        reader.join(5)
        sock.close()
    return seen, result.requests


@dataclass
class Gateways:
    urls: dict[str, str]
    pids: dict[str, int]
    redis_url: str | None
    uses_redis: set[str]


def start_gateways(
    stack: ExitStack, openai_url: str, workdir: Path, variants: Mapping[str, dict[str, Any]], prefix: str
) -> Gateways:
    """One single-worker gateway per variant, pinned to the gateway's CPU (and a Redis if any needs one);
    all stopped when `stack` closes."""
    needs_redis = {name for name, extra in variants.items() if "redis" in extra.get("state", {})}
    redis_url = stack.enter_context(redis_server(workdir)) if needs_redis else None
    found = Gateways({}, {}, redis_url, needs_redis if redis_url else set())
    for i, (name, extra) in enumerate(variants.items()):
        if name in needs_redis and redis_url is None:
            continue  # no redis-server here: the Redis variants are left out of the table
        port = free_port()
        path = workdir / f"{prefix}{i}.yaml"
        path.write_text(yaml.safe_dump(base_config(openai_url, port, extra)))
        env = {"AIMM_BENCH_KEY": KEY, "AIMM_BENCH_REDIS": redis_url or ""}
        cmd = pinned(GATEWAY_CPU, aimm("gateway", "serve", "--config", str(path), "--workers", "1"))
        proc = stack.enter_context(
            process(cmd, f"http://127.0.0.1:{port}/health", env=env, log=workdir / f"{prefix}{i}.log")
        )
        found.pids[name] = proc.pid
        found.urls[name] = f"http://127.0.0.1:{port}/v1/chat/completions"
    return found


def measure(
    openai_url: str,
    workdir: Path,
    variants: Mapping[str, dict[str, Any]],
    duration: float,
    body: bytes,
    prefix: str,
    rounds: int = ROUNDS,
) -> list[Row]:
    """Median p50/p99/RPS/CPU per request at concurrency 1 per variant, and Redis commands per request."""
    with ExitStack() as stack:
        gws = start_gateways(stack, openai_url, workdir, variants, prefix)
        samples: dict[str, list[tuple[WrkResult, float]]] = {name: [] for name in gws.urls}
        for url in gws.urls.values():
            wrk(url, body, HEADERS, 1, 1.0)  # warm-up (and a cache's one miss)
        for _ in range(rounds):
            for name, url in gws.urls.items():
                cpu = cpu_seconds(gws.pids[name])
                result = wrk(url, body, HEADERS, 1, duration)
                cpu = cpu_seconds(gws.pids[name]) - cpu
                samples[name].append((result, cpu * 1e6 / max(1, result.requests)))
        commands: dict[str, dict[str, float]] = {}
        for name in sorted(gws.uses_redis):
            assert gws.redis_url is not None
            seen, requests = count_commands(gws.redis_url, lambda u=gws.urls[name]: wrk(u, body, HEADERS, 1, 1.0))
            commands[name] = {k: v / max(1, requests) for k, v in sorted(seen.items())}
    return [_row(name, rs, commands.get(name)) for name, rs in samples.items()]


def _row(name: str, rs: list[tuple[WrkResult, float]], redis: dict[str, float] | None) -> Row:
    p50s = [r.p50_ms for r, _ in rs]
    return Row(
        name,
        statistics.median(p50s),
        statistics.median(r.p99_ms for r, _ in rs),
        statistics.median(r.rps for r, _ in rs),
        statistics.median(us for _, us in rs),
        (min(p50s), max(p50s)),
        redis,
    )


def table(rows: list[Row], baseline: str) -> list[str]:
    """Markdown table: each variant's p50, p99, RPS and CPU, and what it adds to `baseline`."""
    base = next(r for r in rows if r.name == baseline)
    lines = [
        f"| variant | p50 (range over rounds) | added p50 vs {baseline} | p99 | RPS | gateway CPU per request "
        "| added CPU |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r.name} | {r.p50_ms:.3f} ms ({r.p50_spread[0]:.3f} to {r.p50_spread[1]:.3f}) | "
            f"**{r.p50_ms - base.p50_ms:+.3f} ms** | {r.p99_ms:.3f} ms | {r.rps:,.0f} | {r.cpu_us:.0f} µs | "
            f"**{r.cpu_us - base.cpu_us:+.0f} µs** |"
        )
    return lines


def redis_lines(rows: list[Row]) -> list[str]:
    """Redis commands per request of each Redis variant, by command (EVALSHA by script name)."""
    out = []
    for r in rows:
        if r.redis is not None:
            parts = ", ".join(f"{k} {v:.2f}" for k, v in r.redis.items()) or "none"
            out.append(f"- {r.name}: **{r.redis_per_request:.2f}** Redis commands per request ({parts})")
    return out
