"""In-process cost of authentication, rate limits and guards per request (in-process state).

The same stages a request runs, on the same objects `Gateway` builds, timed with timeit (best
of several repeats, µs of CPU per request). With Redis the limits add one round trip before the call
(`admit`); the settle after it runs off the response path. End to end over HTTP, with Redis
too: `security_e2e.py`.
"""

from __future__ import annotations

import asyncio
import os
import time
import timeit
from collections.abc import Awaitable, Callable
from typing import Any

from aimm_gateway.config import parse_config
from aimm_gateway.security.identity import Identity, Role
from aimm_gateway.service import Gateway
from aimm_gateway.stages.base import Outcome, RequestContext

PROMPT = "Summarise the quarterly report for the board in three bullet points."
KEY = "sk-bench-security-0123456789"


def limits(concurrency: bool) -> dict[str, Any]:
    """Limits at all three levels that never refuse (the bench measures the checking, not a 429)."""
    slots = {"concurrent_requests": 10**6} if concurrency else {}
    return {
        "global": {"requests_per_minute": 10**9, **slots},
        "per_key": {"requests_per_minute": 10**9, "tokens_per_minute": 10**12, **slots},
        "per_ip": {"requests_per_minute": 10**9, **slots},
    }


def _gateway(concurrency: bool = False) -> Gateway:
    os.environ["AIMM_BENCH_SECURITY_KEY"] = KEY
    return Gateway(
        parse_config(
            {
                "auth": {"api_keys": [{"name": "bench", "key": {"env": "AIMM_BENCH_SECURITY_KEY"}}]},
                "models": [{"name": "m", "provider": "mock"}],
                "limits": limits(concurrency),
                "guards": {"enabled": True, "default": {"injection": "flag", "pii": "flag"}},
                "hardening": {"audit": {"sink": "off"}},
            }
        )
    )


def _stages(gateway: Gateway) -> dict[str, Any]:
    chain = gateway.pipeline._stages.chain(RequestContext("r", gateway.runtime, requested="m"))
    return {s.name: s for s in chain.stages}


def bench_security(number: int = 3000, repeat: int = 5) -> dict[str, float]:
    """µs per request of each part (best of `repeat`), and the total of auth + full limits + guard."""
    gateway, with_slots = _gateway(), _gateway(concurrency=True)
    ident = Identity("bench", Role.DEVELOPER)
    body: dict[str, Any] = {"model": "m", "messages": [{"role": "user", "content": PROMPT}]}
    loop = asyncio.new_event_loop()

    async def identify() -> None:
        await gateway.auth.identify(gateway.runtime, KEY, "10.0.0.1", "r")

    def stage(gw: Gateway, name: str) -> Any:
        rt, found = gw.runtime, _stages(gw)[name]

        async def run() -> None:
            c = RequestContext(
                "r", rt, requested="m", identity=ident, client_ip="10.0.0.1", body=body, prompt_tokens=20
            )
            await found.before(c)
            await found.after(c, Outcome(ok=True))

        return run

    cases = {
        "authenticate (config key)": identify,
        "rate limit (3 levels, rpm+tpm)": stage(gateway, "ratelimit"),
        FULL_LIMITS: stage(with_slots, "ratelimit"),
        "guard (injection + PII flag)": stage(gateway, "guard"),
    }
    out: dict[str, float] = {}
    try:
        for label, fn in cases.items():
            out[label] = _best_us(loop, fn, number, repeat)
        loop_us = _best_us(loop, _nothing, number, repeat)
        out = {k: max(0.0, v - loop_us) for k, v in out.items()}  # net of driving the loop once
        out["total (auth + rate limit with concurrency + guard)"] = (
            out["authenticate (config key)"] + out[FULL_LIMITS] + out["guard (injection + PII flag)"]
        )
    finally:
        loop.close()
    return out


FULL_LIMITS = "rate limit (3 levels, rpm+tpm+concurrency)"


async def _nothing() -> None:
    return None


def _best_us(loop: asyncio.AbstractEventLoop, fn: Callable[[], Awaitable[None]], number: int, repeat: int) -> float:
    # CPU time of this process, not wall time: on a shared host, time spent descheduled is not the code's.
    runs = timeit.repeat(lambda: loop.run_until_complete(fn()), number=number, repeat=repeat, timer=time.process_time)
    return min(runs) / number * 1e6
