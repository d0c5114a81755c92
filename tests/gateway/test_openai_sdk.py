"""The official openai SDK, pointed at the gateway, against mock upstreams of both formats."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import openai
import pytest

from tests.gateway.conftest import API_KEY, RunningGateway, Upstream, base_config, upstream_model
from tests.unit.openai_shapes import WEATHER_UNIT_TOOL


@pytest.fixture(params=["openai", "anthropic"])
def gw(
    request: pytest.FixtureRequest,
    upstreams: Callable[..., Upstream],
    start_gateway: Callable[[dict[str, Any]], RunningGateway],
) -> RunningGateway:
    upstream = upstreams(request.param)
    return start_gateway(base_config([upstream_model("m", upstream)]))


def _client(gw: RunningGateway) -> openai.OpenAI:
    return openai.OpenAI(base_url=gw.v1, api_key=API_KEY, max_retries=0)


def test_chat_plain(gw: RunningGateway) -> None:
    resp = _client(gw).chat.completions.with_raw_response.create(
        model="m",
        messages=[{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Say hello"}],
    )
    completion = resp.parse()
    assert completion.object == "chat.completion"
    assert completion.choices[0].message.role == "assistant"
    assert "Say hello" in (completion.choices[0].message.content or "")
    assert completion.choices[0].finish_reason == "stop"
    assert completion.usage is not None and completion.usage.total_tokens == (
        completion.usage.prompt_tokens + completion.usage.completion_tokens
    )
    assert resp.headers["x-aimm-model"] == "m"
    assert resp.headers["x-aimm-attempts"] == "1"


def test_chat_streaming_with_usage(gw: RunningGateway) -> None:
    client = _client(gw)
    plain = client.chat.completions.create(model="m", messages=[{"role": "user", "content": "Stream me a reply"}])
    stream = client.chat.completions.create(
        model="m",
        messages=[{"role": "user", "content": "Stream me a reply"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == plain.choices[0].message.content
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finishes == ["stop"]
    usage_chunks = [c for c in chunks if c.usage is not None]
    assert len(usage_chunks) == 1 and usage_chunks[0].choices == []
    assert usage_chunks[0].usage is not None and plain.usage is not None
    assert usage_chunks[0].usage.completion_tokens == plain.usage.completion_tokens
    assert chunks[-1].usage is not None  # usage comes last, then [DONE]


def test_stream_without_include_usage_has_no_usage(gw: RunningGateway) -> None:
    chunks = list(
        _client(gw).chat.completions.create(model="m", messages=[{"role": "user", "content": "hi"}], stream=True)
    )
    assert chunks and all(c.usage is None for c in chunks)
    assert all(c.choices for c in chunks)


def test_tools_round_trip(gw: RunningGateway) -> None:
    client = _client(gw)
    messages: list[Any] = [{"role": "user", "content": "What's the weather in Paris?"}]
    first = client.chat.completions.create(model="m", messages=messages, tools=[WEATHER_UNIT_TOOL])  # type: ignore[list-item]
    choice = first.choices[0]
    assert choice.finish_reason == "tool_calls"
    calls = choice.message.tool_calls or []
    assert len(calls) == 1 and calls[0].function.name == "get_weather"  # type: ignore[union-attr]
    args = json.loads(calls[0].function.arguments)  # type: ignore[union-attr]
    assert set(args) == {"city", "unit"} and args["unit"] in ("c", "f")
    messages.append(choice.message.model_dump(exclude_none=True))
    messages.append({"role": "tool", "tool_call_id": calls[0].id, "content": '{"temp": 21, "sky": "clear"}'})
    second = client.chat.completions.create(model="m", messages=messages, tools=[WEATHER_UNIT_TOOL])  # type: ignore[list-item]
    assert second.choices[0].finish_reason == "stop"
    assert "21" in (second.choices[0].message.content or "")


def test_tools_streaming_reassembles_arguments(gw: RunningGateway) -> None:
    client = _client(gw)
    messages: Any = [{"role": "user", "content": "Weather in Oslo?"}]
    plain = client.chat.completions.create(model="m", messages=messages, tools=[WEATHER_UNIT_TOOL])  # type: ignore[list-item]
    stream = client.chat.completions.create(model="m", messages=messages, tools=[WEATHER_UNIT_TOOL], stream=True)  # type: ignore[list-item]
    names: dict[int, str] = {}
    arguments: dict[int, str] = {}
    finish = None
    for c in stream:
        for call in (c.choices[0].delta.tool_calls or []) if c.choices else []:
            if call.function and call.function.name:
                names[call.index] = call.function.name
            if call.function and call.function.arguments:
                arguments[call.index] = arguments.get(call.index, "") + call.function.arguments
        if c.choices and c.choices[0].finish_reason:
            finish = c.choices[0].finish_reason
    expected = plain.choices[0].message.tool_calls or []
    assert finish == "tool_calls"
    assert names == {0: "get_weather"}
    assert json.loads(arguments[0]) == json.loads(expected[0].function.arguments)  # type: ignore[union-attr]


def test_models_list(gw: RunningGateway) -> None:
    models = _client(gw).models.list()
    assert [m.id for m in models.data] == ["m"]
    assert models.data[0].object == "model"


def test_embeddings_openai_format(
    openai_upstream: Upstream, start_gateway: Callable[[dict[str, Any]], RunningGateway]
) -> None:
    gw = start_gateway(base_config([upstream_model("emb", openai_upstream)]))
    client = _client(gw)
    result = client.embeddings.create(model="emb", input=["hello", "world"], dimensions=64)
    assert len(result.data) == 2 and all(len(d.embedding) == 64 for d in result.data)
    assert result.data[0].embedding != result.data[1].embedding
    again = client.embeddings.create(model="emb", input="hello", dimensions=64, encoding_format="float")
    assert again.data[0].embedding == pytest.approx(result.data[0].embedding, rel=1e-6)


def test_embeddings_on_anthropic_is_a_clear_400(
    anthropic_upstream: Upstream, start_gateway: Callable[[dict[str, Any]], RunningGateway]
) -> None:
    gw = start_gateway(base_config([upstream_model("claude", anthropic_upstream)]))
    with pytest.raises(openai.BadRequestError) as err:
        _client(gw).embeddings.create(model="claude", input="hello")
    assert "embeddings" in str(err.value)


def test_unknown_fields_reach_openai_compatible_upstreams(
    openai_upstream: Upstream, start_gateway: Callable[[dict[str, Any]], RunningGateway]
) -> None:
    gw = start_gateway(base_config([upstream_model("m", openai_upstream, model="upstream-id")]))
    _client(gw).chat.completions.create(
        model="m",
        messages=[{"role": "user", "content": "hi"}],
        seed=7,
        user="u-1",
        extra_body={"metadata": {"team": "search"}, "store": False},
    )
    last = openai_upstream.stats()["last_request"]
    assert last["body"]["model"] == "upstream-id"  # the gateway's name became the upstream id
    assert last["body"]["metadata"] == {"team": "search"} and last["body"]["store"] is False
    assert last["body"]["seed"] == 7 and last["body"]["user"] == "u-1"
    assert last["headers"]["authorization"] == "Bearer upstream-secret-key"


def test_one_pooled_client_per_upstream_origin(
    openai_upstream: Upstream, start_gateway: Callable[[dict[str, Any]], RunningGateway]
) -> None:
    gw = start_gateway(base_config([upstream_model("a", openai_upstream), upstream_model("b", openai_upstream)]))
    client = _client(gw)
    for name in ("a", "b", "a", "b"):
        client.chat.completions.create(model=name, messages=[{"role": "user", "content": "hi"}])
    pools = gw.gateway.pools
    assert len(pools._clients) == 1  # two models, one origin, one pool
    assert pools.for_url(f"{openai_upstream.url}/v1") is pools.for_url(f"{openai_upstream.url}/other")
