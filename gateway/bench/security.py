"""In-process cost of authentication, rate limits and guards per request (in-process state).

The same stages a request runs, on the same objects `Gateway` builds, timed with timeit (best
of several repeats, µs per request). With Redis the limits add one round trip before the call
(`hit_many`); the settle after it runs off the response path.
"""

from __future__ import annotations

import asyncio
import os
import timeit
from collections.abc import Awaitable, Callable
from typing import Any

from aimm_gateway.config import parse_config
from aimm_gateway.security.identity import Identity, Role
from aimm_gateway.service import Gateway
from aimm_gateway.stages.base import Outcome, RequestContext

PROMPT = "Summarise the quarterly report for the board in three bullet points."
KEY = "sk-bench-security-0123456789"


def _gateway() -> Gateway:
    os.environ["AIMM_BENCH_SECURITY_KEY"] = KEY
    return Gateway(
        parse_config(
            {
                "auth": {"api_keys": [{"name": "bench", "key": {"env": "AIMM_BENCH_SECURITY_KEY"}}]},
                "models": [{"name": "m", "provider": "mock"}],
                "limits": {
                    "global": {"requests_per_minute": 10**9},
                    "per_key": {"requests_per_minute": 10**9, "tokens_per_minute": 10**12},
                    "per_ip": {"requests_per_minute": 10**9},
                },
                "guards": {"enabled": True, "default": {"injection": "flag", "pii": "flag"}},
                "hardening": {"audit": {"sink": "off"}},
            }
        )
    )


def bench_security(number: int = 3000, repeat: int = 5) -> dict[str, float]:
    gateway = _gateway()
    rt = gateway.runtime
    ident = Identity("bench", Role.DEVELOPER)
    body: dict[str, Any] = {"model": "m", "messages": [{"role": "user", "content": PROMPT}]}
    chain = gateway.pipeline._stages.chain(RequestContext("r", rt, requested="m"))
    stages = {s.name: s for s in chain.stages}
    loop = asyncio.new_event_loop()

    def ctx() -> RequestContext:
        return RequestContext("r", rt, requested="m", identity=ident, client_ip="10.0.0.1", body=body, prompt_tokens=20)

    async def identify() -> None:
        await gateway.auth.identify(rt, KEY, "10.0.0.1", "r")

    def stage(name: str) -> Any:
        async def run() -> None:
            c = ctx()
            await stages[name].before(c)
            await stages[name].after(c, Outcome(ok=True))

        return run

    cases = {"authenticate (config key)": identify, "rate limit (3 levels, rpm+tpm)": stage("ratelimit")}
    cases["guard (injection + PII flag)"] = stage("guard")
    out: dict[str, float] = {}
    try:
        for label, fn in cases.items():
            out[label] = _best_us(loop, fn, number, repeat)
        loop_us = _best_us(loop, _nothing, number, repeat)
        out = {k: max(0.0, v - loop_us) for k, v in out.items()}  # net of driving the loop once
        out["total"] = sum(out.values())
    finally:
        loop.close()
    return out


async def _nothing() -> None:
    return None


def _best_us(loop: asyncio.AbstractEventLoop, fn: Callable[[], Awaitable[None]], number: int, repeat: int) -> float:
    return min(timeit.repeat(lambda: loop.run_until_complete(fn()), number=number, repeat=repeat)) / number * 1e6


def security_lines(figures: dict[str, float] | None) -> list[str]:
    """The report's section for these figures (empty when they were not measured)."""
    if not figures:
        return []
    lines = ["", "### Authentication, rate limits and guards per request (in-process state)", ""]
    return lines + [f"- {name}: {us:.1f} µs" for name, us in figures.items()]
