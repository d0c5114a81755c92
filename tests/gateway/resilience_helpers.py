"""Shared helpers for the fault-injection suite (tests/gateway/test_resilience_*.py).

Everything here talks to a real gateway and real mock upstreams over loopback HTTP: admin
status, Prometheus metrics, SSE parsing and the "complete answer or clean error" oracle.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import orjson
from prometheus_client.parser import text_string_to_metric_families

from aimm_gateway.mock.engine import generate
from aimm_gateway.mock.openai_wire import parse_request
from tests.gateway.conftest import ADMIN_TOKEN, API_KEY, RunningGateway, Upstream, base_config, upstream_model

# Quick retries: the suite measures retry *behaviour*, never waits on default backoffs.
FAST_RETRIES: dict[str, Any] = {"attempts": 2, "backoff_initial_s": 0.01, "backoff_max_s": 0.02}
# Clean errors a client may get from a chat call (OpenAI-shaped body, see docs/api.md).
CLEAN_ERROR_STATUSES = frozenset({429, 502, 503, 504})


def model_for(name: str, upstream: Upstream, upstream_id: str, **extra: Any) -> dict[str, Any]:
    """A gateway model whose mock answers start "Mock reply from <upstream_id>": every target
    of a route answers differently, so a spliced answer is detectable."""
    return upstream_model(name, upstream, model=upstream_id, **extra)


PAIR = [{"model": "ma", "priority": 0}, {"model": "mb", "priority": 1}]


def pair_gateway(
    upstreams: Callable[..., Upstream],
    start_gateway: Callable[[dict[str, Any]], RunningGateway],
    a_faults: dict[str, Any],
    name: str = "pair",
    **route: Any,
) -> tuple[RunningGateway, Upstream, Upstream]:
    """Route `name`: A (answers as alpha, preferred, misbehaving as `a_faults` say) then B (bravo),
    with fast retries; `route` adds to or overrides the route's settings."""
    a, b = upstreams("openai", **a_faults), upstreams("openai")
    models = [model_for("ma", a, "alpha"), model_for("mb", b, "bravo")]
    gw = start_gateway(base_config(models, routes=[{"name": name, "targets": PAIR, "retries": FAST_RETRIES, **route}]))
    return gw, a, b


def chat_body(prompt: str, *, model: str, stream: bool = False) -> dict[str, Any]:
    body: dict[str, Any] = {"model": model, "messages": [{"role": "user", "content": prompt}]}
    if stream:
        body["stream"] = True
    return body


def expected_answer(upstream_id: str, prompt: str) -> str:
    """The text the deterministic mock engine answers for `prompt` as `upstream_id`."""
    inp = parse_request({"model": upstream_id, "messages": [{"role": "user", "content": prompt}]})
    text = generate(inp).choices[0].text
    assert text is not None
    return text


# -- gateway and upstream state over HTTP ------------------------------------------------------


def admin_status(gw: RunningGateway) -> dict[str, dict[str, Any]]:
    resp = httpx.get(f"{gw.url}/admin/models/status", headers={"authorization": f"Bearer {ADMIN_TOKEN}"}, timeout=10)
    resp.raise_for_status()
    return {m["name"]: m for m in resp.json()["models"]}


def metrics(gw: RunningGateway) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of GET /metrics as {(sample name, sorted labels): value}."""
    resp = httpx.get(f"{gw.url}/metrics", timeout=10)
    resp.raise_for_status()
    out: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
    for family in text_string_to_metric_families(resp.text):
        for sample in family.samples:
            out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return out


def metric(samples: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str, **labels: str) -> float:
    """One sample's value (0 when absent); labels not given are summed over."""
    total = 0.0
    for (sample, sample_labels), value in samples.items():
        if sample != name:
            continue
        have = dict(sample_labels)
        if all(have.get(k) == v for k, v in labels.items()):
            total += value
    return total


def upstream_count(upstream: Upstream) -> int:
    """Chat requests that reached the mock (including dropped and failed ones)."""
    return int(upstream.stats()["by_path"].get("/v1/chat/completions", 0))


def wait_until(cond: Callable[[], bool], timeout: float, interval: float = 0.02) -> bool:
    deadline = time.monotonic() + timeout
    while True:
        if cond():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval)


def api_client(gw: RunningGateway, timeout: float = 15.0) -> httpx.Client:
    return httpx.Client(base_url=gw.url, headers={"authorization": f"Bearer {API_KEY}"}, timeout=timeout)


def async_api_client(gw: RunningGateway, timeout: float = 15.0, limit: int = 64) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        base_url=gw.url,
        headers={"authorization": f"Bearer {API_KEY}"},
        timeout=timeout,
        limits=httpx.Limits(max_connections=limit, max_keepalive_connections=limit),
    )


# -- the oracle: a complete answer or a clean error ----------------------------------------------


def assert_clean_error(status: int, raw: bytes, allowed: frozenset[int] = CLEAN_ERROR_STATUSES) -> dict[str, Any]:
    """An OpenAI-shaped error body with one of the allowed statuses."""
    assert status in allowed, f"unexpected status {status}: {raw[:300]!r}"
    body = orjson.loads(raw)
    err = body["error"]
    assert set(err) == {"message", "type", "param", "code"}, err
    assert isinstance(err["message"], str) and err["message"], err
    assert isinstance(err["type"], str) and err["type"], err
    return dict(err)


@dataclass
class StreamResult:
    """A parsed gateway SSE response."""

    chunks: list[dict[str, Any]] = field(default_factory=list)
    error: dict[str, Any] | None = None  # the terminal error event's "error" object
    done: bool = False  # saw `data: [DONE]`
    trailing: list[str] = field(default_factory=list)  # anything after a terminal event

    @property
    def text(self) -> str:
        return "".join((c["choices"][0]["delta"].get("content") or "") for c in self.chunks if c.get("choices"))

    @property
    def finish_reasons(self) -> list[str]:
        return [
            c["choices"][0]["finish_reason"]
            for c in self.chunks
            if c.get("choices") and c["choices"][0].get("finish_reason")
        ]

    @property
    def upstream_ids(self) -> set[str]:
        return {c["model"] for c in self.chunks if "model" in c}


def parse_sse(raw: bytes) -> StreamResult:
    """Split the gateway's OpenAI SSE framing; every event must be `data: <json>` or [DONE]."""
    result = StreamResult()
    text = raw.decode()
    assert text.endswith("\n\n") or not text, f"stream ends mid-event: {text[-200:]!r}"
    for frame in text.split("\n\n"):
        if not frame:
            continue
        assert frame.startswith("data: "), f"unexpected SSE frame {frame[:200]!r}"
        data = frame[len("data: ") :]
        if result.done or result.error is not None:
            result.trailing.append(data)
            continue
        if data == "[DONE]":
            result.done = True
            continue
        event = orjson.loads(data)
        if "error" in event and "choices" not in event:
            result.error = event["error"]
        else:
            result.chunks.append(event)
    return result


def check_complete_stream(result: StreamResult, upstream_id: str, prompt: str) -> None:
    """A whole answer from one model: [DONE], one finish_reason, the model's exact text."""
    assert result.error is None and result.done and not result.trailing, result
    assert result.finish_reasons == ["stop"], result.finish_reasons
    assert result.upstream_ids == {upstream_id}, f"spliced stream: {result.upstream_ids}"
    assert result.text == expected_answer(upstream_id, prompt)


def check_errored_stream(result: StreamResult, upstream_id: str, prompt: str) -> None:
    """A stream that broke after it was committed: what arrived is a prefix of one model's
    answer (never another model's continuation), then exactly one error event, no [DONE]."""
    assert result.error is not None and not result.done and not result.trailing, result
    assert set(result.error) == {"message", "type", "param", "code"}, result.error
    assert result.upstream_ids <= {upstream_id}, f"spliced stream: {result.upstream_ids}"
    assert expected_answer(upstream_id, prompt).startswith(result.text), result.text
    assert not result.finish_reasons, "an errored stream must not also claim to have finished"


async def gather_limited(n: int, concurrency: int, make: Callable[[int], Any]) -> list[Any]:
    """Run make(0..n-1) coroutines, `concurrency` at a time; results in order."""
    sem = asyncio.Semaphore(concurrency)

    async def one(i: int) -> Any:
        async with sem:
            return await make(i)

    return await asyncio.gather(*(one(i) for i in range(n)))
