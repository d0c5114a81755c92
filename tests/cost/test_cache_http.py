"""The response cache over real HTTP with the official SDK: plain and streamed, in-process and Redis."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import openai
import pytest

from tests.backing import RedisServer
from tests.gateway.conftest import API_KEY, RunningGateway, Upstream, base_config, upstream_model
from tests.gateway.resilience_helpers import upstream_count as chat_calls

MSG = [{"role": "user", "content": "what is the capital of France?"}]


@pytest.fixture(params=["memory", "redis"])
def cached_gateway(
    request: pytest.FixtureRequest,
    start_gateway: Callable[[dict[str, Any]], RunningGateway],
    openai_upstream: Upstream,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> tuple[RunningGateway, Upstream]:
    extra: dict[str, Any] = {"cache": {"enabled": True, "ttl_s": 60}, "store": {"sqlite_path": str(tmp_path / "u.db")}}
    if request.param == "redis":
        server: RedisServer = request.getfixturevalue("redis_server")
        monkeypatch.setenv("AIMM_TEST_REDIS_URL", server.url)
        prefix = f"cache{uuid.uuid4().hex[:6]}:"
        extra["state"] = {"redis": {"url": {"env": "AIMM_TEST_REDIS_URL"}, "key_prefix": prefix, "timeout_ms": 500}}
    gw = start_gateway(base_config([upstream_model("gpt", openai_upstream)], **extra))
    return gw, openai_upstream


def _client(gw: RunningGateway) -> openai.OpenAI:
    return openai.OpenAI(base_url=gw.v1, api_key=API_KEY, max_retries=0)


def test_plain_answer_cached(cached_gateway: tuple[RunningGateway, Upstream]) -> None:
    gw, upstream = cached_gateway
    client = _client(gw)
    first = client.chat.completions.with_raw_response.create(model="gpt", temperature=0, messages=MSG)
    second = client.chat.completions.with_raw_response.create(model="gpt", temperature=0, messages=MSG)
    assert first.headers["x-aimm-cache"] == "miss" and second.headers["x-aimm-cache"] == "hit"
    assert chat_calls(upstream) == 1
    assert second.parse().choices[0].message.content == first.parse().choices[0].message.content
    # Not deterministic: never cached.
    warm = client.chat.completions.with_raw_response.create(model="gpt", temperature=0.7, messages=MSG)
    assert "x-aimm-cache" not in warm.headers
    assert chat_calls(upstream) == 2


def test_cache_control_honoured(cached_gateway: tuple[RunningGateway, Upstream]) -> None:
    gw, upstream = cached_gateway
    client = _client(gw)
    ask = {"model": "gpt", "temperature": 0, "messages": [{"role": "user", "content": "no-store please"}]}
    client.chat.completions.create(**ask, extra_headers={"Cache-Control": "no-store"})
    again = client.chat.completions.with_raw_response.create(**ask)
    assert again.headers["x-aimm-cache"] == "miss"  # no-store kept it out
    fresh = client.chat.completions.with_raw_response.create(**ask, extra_headers={"Cache-Control": "no-cache"})
    assert fresh.headers["x-aimm-cache"] == "miss"  # no-cache skipped the lookup...
    assert client.chat.completions.with_raw_response.create(**ask).headers["x-aimm-cache"] == "hit"  # ...stored it
    assert chat_calls(upstream) == 3


def test_stream_cached_and_replayed_as_a_stream(cached_gateway: tuple[RunningGateway, Upstream]) -> None:
    gw, upstream = cached_gateway
    client = _client(gw)
    ask = {"model": "gpt", "temperature": 0, "messages": [{"role": "user", "content": "stream this"}], "stream": True}
    first = client.chat.completions.with_raw_response.create(**ask)
    text_1 = "".join(c.choices[0].delta.content or "" for c in first.parse() if c.choices)
    second = client.chat.completions.with_raw_response.create(**ask)
    assert second.headers["x-aimm-cache"] == "hit" and second.headers["content-type"].startswith("text/event-stream")
    text_2 = "".join(c.choices[0].delta.content or "" for c in second.parse() if c.choices)
    assert text_1 and text_2 == text_1
    assert chat_calls(upstream) == 1
    plain = client.chat.completions.with_raw_response.create(**{**ask, "stream": False})
    assert plain.headers["x-aimm-cache"] == "hit" and plain.parse().choices[0].message.content == text_1


def test_hits_cost_nothing_and_are_counted(cached_gateway: tuple[RunningGateway, Upstream]) -> None:
    gw, _ = cached_gateway
    client = _client(gw)
    for _ in range(3):
        client.chat.completions.create(model="gpt", temperature=0, messages=MSG)
    with gw.client() as http:
        totals = http.get("/api/v1/analytics/usage", params={"group_by": "model"}).json()["totals"]
        metrics = http.get("/metrics").text
    assert totals["requests"] == 3 and totals["cache_hit_rate"] == round(2 / 3, 4)
    assert 'ai_multimodel_cache_requests_total{result="hit"} 2.0' in metrics
    assert totals["savings_usd"] != "0.000000"  # the two hits are savings against the uncached cost
