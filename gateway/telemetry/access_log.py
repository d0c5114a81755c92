"""The structured access log: one JSON line per client request, metadata only.

Never the prompt, the answer or a key: the line names the key (its configured name), the route,
the model that answered, status, tokens, cost, latency, attempts and cache. Successful requests
are sampled (`observability.access_log.sample_rate`); failed ones are always written.
"""

from __future__ import annotations

import random
import sys
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, TextIO

import orjson

if TYPE_CHECKING:
    from aimm_gateway.stages.base import Outcome, RequestContext


def access_record(ctx: RequestContext, outcome: Outcome, latency_s: float, trace_id: str | None) -> dict[str, object]:
    """The line's fields (pure; the tests and the log share it)."""
    record: dict[str, object] = {
        "ts": round(time.time(), 3),
        "request_id": ctx.request_id,
        "key": ctx.key_name,
        "api": ctx.api,
        "route": ctx.requested,
        "model": outcome.model,
        "provider": outcome.provider,
        "status": outcome.status,
        "input_tokens": outcome.usage.prompt_tokens,
        "output_tokens": outcome.usage.completion_tokens,
        "cost_usd": str(outcome.cost),
        "latency_ms": round(latency_s * 1000, 2),
        "ttft_ms": None if outcome.ttft_s is None else round(outcome.ttft_s * 1000, 2),
        "attempts": len(outcome.attempts),
        "cache": "hit" if outcome.cache_hit else "miss",
        "stream": ctx.stream,
    }
    if outcome.error is not None:
        record["error"] = {"type": outcome.error.type, "code": outcome.error.code}
    if trace_id is not None:
        record["trace_id"] = trace_id
    return record


class AccessLog:
    def __init__(
        self, sample_rate: float, stream: TextIO | None = None, rand: Callable[[], float] = random.random
    ) -> None:
        self._sample_rate = sample_rate
        self._stream = stream if stream is not None else sys.stdout
        self._rand = rand

    def write(self, ctx: RequestContext, outcome: Outcome, latency_s: float, trace_id: str | None = None) -> None:
        if outcome.ok and self._sample_rate < 1.0 and self._rand() >= self._sample_rate:
            return
        line = orjson.dumps(access_record(ctx, outcome, latency_s, trace_id)).decode()
        self._stream.write(line + "\n")
        self._stream.flush()  # a crash or a `kubectl logs -f` should not wait for a buffer to fill
