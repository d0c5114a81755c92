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

from aimm_gateway.backlog import Backlog

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
    """Lines to `stream` as they are made; to the process's stdout (no `stream`: the gateway
    itself), batched through the backlog (gateway/backlog.py): the lines made meanwhile go out
    in one write while the worker waits on its next upstream call or within 2 ms (one request
    in flight), else right after the loop turn they were made in. The gateway's stdout is
    unbuffered (PYTHONUNBUFFERED in the image), so a write is a syscall: one per request was
    ~3 % of a plain request's CPU; now the requests that end together share it. Never waiting
    for a buffer to fill (a crash or `kubectl logs -f` should not wait for that); shutdown
    drains the backlog, then flushes."""

    def __init__(
        self,
        sample_rate: float,
        stream: TextIO | None = None,
        rand: Callable[[], float] = random.random,
        backlog: Backlog | None = None,
    ) -> None:
        self._sample_rate = sample_rate
        self._stream = stream if stream is not None else sys.stdout
        self._rand = rand
        self._pending: list[str] | None = [] if stream is None else None  # None: write each line at once
        self._backlog = backlog if backlog is not None else Backlog()

    def write(self, ctx: RequestContext, outcome: Outcome, latency_s: float, trace_id: str | None = None) -> None:
        if outcome.ok and self._sample_rate < 1.0 and self._rand() >= self._sample_rate:
            return
        line = orjson.dumps(access_record(ctx, outcome, latency_s, trace_id)).decode() + "\n"
        pending = self._pending
        if pending is None:
            self._stream.write(line)
            self._stream.flush()
            return
        pending.append(line)
        if len(pending) == 1:
            self._backlog.defer(self.flush)

    def flush(self) -> None:
        """Write the lines made since the last flush, in one write."""
        if self._pending:
            lines = "".join(self._pending)
            self._pending.clear()
            self._stream.write(lines)
            self._stream.flush()
