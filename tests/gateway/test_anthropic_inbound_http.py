"""The official anthropic SDK as a client of the gateway's /v1/messages, over real loopback HTTP.

The same client code runs against a model behind an OpenAI-format upstream, one behind an
Anthropic-format upstream and an in-process `provider: mock` model: Anthropic clients can use
any configured model. Errors must come back in Anthropic's shape, which the SDK turns into its
typed exceptions.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import anthropic
import httpx
import pytest

from tests.gateway.conftest import API_KEY, RunningGateway, Upstream, base_config, upstream_model
from tests.unit.openai_shapes import PNG_B64

WEATHER: Any = {
    "name": "get_weather",
    "description": "Weather for a city",
    "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
}
CAPABILITIES = ["chat", "streaming", "tools", "vision", "json"]


def models_for(kind: str, upstreams: Callable[..., Upstream]) -> tuple[list[dict[str, Any]], Upstream | None]:
    if kind == "mock":
        return [{"name": "m", "provider": "mock", "capabilities": CAPABILITIES}], None
    upstream = upstreams(kind)
    cut = {"x-mock-fault": "cut_after=4"}  # the upstream drops the connection mid-stream
    return [upstream_model("m", upstream), upstream_model("m-cut", upstream, headers=cut)], upstream


@pytest.fixture(params=["openai", "anthropic", "mock"])
def setup(
    request: pytest.FixtureRequest,
    upstreams: Callable[..., Upstream],
    start_gateway: Callable[[dict[str, Any]], RunningGateway],
) -> tuple[RunningGateway, Upstream | None]:
    models, upstream = models_for(request.param, upstreams)
    return start_gateway(base_config(models)), upstream


@pytest.fixture
def gw(setup: tuple[RunningGateway, Upstream | None]) -> RunningGateway:
    return setup[0]


def client(gw: RunningGateway, **kw: Any) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=gw.url, api_key=kw.pop("api_key", API_KEY), max_retries=0, **kw)


def user(content: Any) -> list[Any]:
    return [{"role": "user", "content": content}]


def text_of(message: anthropic.types.Message) -> str:
    return "".join(b.text for b in message.content if b.type == "text")


def test_plain_message(gw: RunningGateway) -> None:
    raw = client(gw).messages.with_raw_response.create(model="m", max_tokens=200, messages=user("Say hello"))
    message = raw.parse()
    assert message.type == "message" and message.role == "assistant"
    assert message.id.startswith("msg_")
    assert "Say hello" in text_of(message)
    assert message.stop_reason == "end_turn"
    assert message.usage.input_tokens > 0 and message.usage.output_tokens > 0
    assert raw.headers["x-aimm-model"] == "m"
    assert raw.headers["request-id"] == raw.headers["x-request-id"]


def test_stream_final_message_equals_the_plain_answer(gw: RunningGateway) -> None:
    sdk = client(gw)
    plain = sdk.messages.create(model="m", max_tokens=200, messages=user("Stream me a reply"))
    with sdk.messages.stream(model="m", max_tokens=200, messages=user("Stream me a reply")) as stream:
        pieces = list(stream.text_stream)
        final = stream.get_final_message()
    assert len(pieces) > 1  # really streamed
    assert text_of(final) == text_of(plain) == "".join(pieces)
    assert final.stop_reason == "end_turn"
    assert final.usage.output_tokens == plain.usage.output_tokens
    assert final.usage.input_tokens == plain.usage.input_tokens


@pytest.mark.parametrize("streamed", [False, True])
def test_tool_use_round_trip(gw: RunningGateway, streamed: bool) -> None:
    sdk = client(gw)
    question = user("What is the weather in Paris?")
    first: anthropic.types.Message
    if streamed:
        with sdk.messages.stream(model="m", max_tokens=300, tools=[WEATHER], messages=question) as stream:
            first = stream.get_final_message()
    else:
        first = sdk.messages.create(model="m", max_tokens=300, tools=[WEATHER], messages=question)
    assert first.stop_reason == "tool_use"
    call = next(b for b in first.content if b.type == "tool_use")
    assert call.name == "get_weather" and isinstance(call.input, dict) and "city" in call.input
    result = {"type": "tool_result", "tool_use_id": call.id, "content": "sunny and 21C"}
    messages = [*question, {"role": "assistant", "content": first.content}, *user([result])]
    final = sdk.messages.create(model="m", max_tokens=300, tools=[WEATHER], messages=messages)
    assert final.stop_reason == "end_turn"
    assert "sunny and 21C" in text_of(final)


def test_image_block_reaches_the_model_as_an_image(gw: RunningGateway) -> None:
    image = {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG_B64}}
    message = client(gw).messages.create(
        model="m", max_tokens=200, messages=user([image, {"type": "text", "text": "What is in this picture?"}])
    )
    assert "[image]" in text_of(message)  # how the mocks' model sees an image part
    assert "What is in this picture?" in text_of(message)


def test_system_prompt_is_sent(setup: tuple[RunningGateway, Upstream | None]) -> None:
    gw, upstream = setup
    sdk = client(gw)
    system = "You are a terse assistant who answers in one word. " * 4
    bare = sdk.messages.create(model="m", max_tokens=100, messages=user("Hi"))
    with_system = sdk.messages.create(model="m", max_tokens=100, system=system, messages=user("Hi"))
    assert with_system.usage.input_tokens > bare.usage.input_tokens  # the upstream counted it
    if upstream is not None:
        sent = upstream.stats()["last_request"]["body"]
        assert system in str(sent.get("system") or sent["messages"][0]["content"])


def test_missing_max_tokens_is_an_anthropic_400(gw: RunningGateway) -> None:
    resp = httpx.post(
        f"{gw.url}/v1/messages", headers={"x-api-key": API_KEY}, json={"model": "m", "messages": user("hi")}
    )
    assert resp.status_code == 400
    body = resp.json()
    assert body["type"] == "error"
    assert body["error"] == {"type": "invalid_request_error", "message": "max_tokens: Field required"}
    assert resp.headers["request-id"] == body["request_id"]


def test_unknown_model_is_not_found_error(gw: RunningGateway) -> None:
    with pytest.raises(anthropic.NotFoundError) as info:
        client(gw).messages.create(model="no-such-model", max_tokens=10, messages=user("hi"))
    assert info.value.status_code == 404
    assert info.value.body["error"]["type"] == "not_found_error"  # type: ignore[index]


def test_wrong_key_is_authentication_error(gw: RunningGateway) -> None:
    with pytest.raises(anthropic.AuthenticationError) as info:
        client(gw, api_key="wrong-key").messages.create(model="m", max_tokens=10, messages=user("hi"))
    assert info.value.body["error"]["type"] == "authentication_error"  # type: ignore[index]


def test_bearer_token_is_accepted_too(gw: RunningGateway) -> None:
    sdk = anthropic.Anthropic(base_url=gw.url, auth_token=API_KEY, max_retries=0)
    assert text_of(sdk.messages.create(model="m", max_tokens=50, messages=user("hi")))


def test_unsupported_feature_is_a_clear_400(gw: RunningGateway) -> None:
    with pytest.raises(anthropic.BadRequestError) as info:
        client(gw).messages.create(
            model="m", max_tokens=4096, thinking={"type": "enabled", "budget_tokens": 2048}, messages=user("hi")
        )
    assert info.value.body["error"]["type"] == "invalid_request_error"  # type: ignore[index]
    assert "thinking" in info.value.message


def test_count_tokens_grows_with_the_prompt(gw: RunningGateway) -> None:
    sdk = client(gw)
    short = sdk.messages.count_tokens(model="m", messages=user("hi"))
    long = sdk.messages.count_tokens(model="m", system="Be brief.", messages=user("hi " * 400))
    assert isinstance(short.input_tokens, int) and short.input_tokens > 0
    assert long.input_tokens > short.input_tokens
    with pytest.raises(anthropic.NotFoundError):
        sdk.messages.count_tokens(model="no-such-model", messages=user("hi"))


@pytest.mark.parametrize("kind", ["openai", "anthropic"])
def test_mid_stream_upstream_cut_raises_in_the_sdk(
    kind: str, upstreams: Callable[..., Upstream], start_gateway: Callable[[dict[str, Any]], RunningGateway]
) -> None:
    models, _ = models_for(kind, upstreams)
    gw = start_gateway(base_config(models))
    received: list[str] = []
    with (
        pytest.raises(anthropic.APIStatusError) as info,
        client(gw).messages.stream(model="m-cut", max_tokens=200, messages=user("A long answer")) as stream,
    ):
        for event in stream:
            if event.type == "text":
                received.append(event.text)
    assert received  # the answer had started: this is the error event of a committed stream
    assert info.value.status_code == 200
    assert info.value.body["error"]["type"] == "api_error"  # type: ignore[index]
