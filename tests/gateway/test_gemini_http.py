"""Gemini over real loopback HTTP: the official SDKs on both ends.

`google-genai` talks to the Gemini mock directly (the oracle for the mock's wire format), and the
official `openai` SDK talks to the gateway in front of it (the oracle for the adapter's output).
"""

from __future__ import annotations

import base64
import struct
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import openai
import orjson
import pytest
from google import genai
from google.genai import types as genai_types

from aimm_gateway.mock.faults import FaultSettings
from aimm_gateway.mock.server import create_mock_app
from tests.gateway.conftest import API_KEY, RunningGateway, Upstream, base_config
from tests.gateway.openai_calls import stream_until_error
from tests.servers import run_asgi_app
from tests.unit.test_gemini_translate import PNG_B64, WEATHER_TOOL

Start = Callable[[dict[str, Any]], RunningGateway]
TOOLS: Any = [WEATHER_TOOL]  # a dict literal, not the SDK's TypedDict
CAPABILITIES = ["chat", "streaming", "tools", "vision", "json", "embeddings"]


def gemini_model(name: str, upstream: Upstream, model: str = "gemini-2.5-flash", **extra: Any) -> dict[str, Any]:
    return {
        "name": name,
        "provider": "gemini",
        "model": model,
        "base_url": upstream.url,
        "api_key": {"env": "AIMM_TEST_UPSTREAM_KEY"},
        "capabilities": CAPABILITIES,
        **extra,
    }


@pytest.fixture
def gemini(upstreams: Callable[..., Upstream]) -> Upstream:
    return upstreams("gemini", stream_chunks=5)


@pytest.fixture
def gw(gemini: Upstream, start_gateway: Start) -> RunningGateway:
    models = [
        gemini_model("gem", gemini),
        gemini_model("gem3", gemini, "gemini-3-pro-preview"),
        gemini_model("emb", gemini, "gemini-embedding-001"),
    ]
    return start_gateway(base_config(models, retries={"attempts": 1}))


@pytest.fixture
def client(gw: RunningGateway) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=gw.v1, api_key=API_KEY, max_retries=0) as c:
        yield c


def last_body(upstream: Upstream) -> dict[str, Any]:
    last: dict[str, Any] = upstream.stats()["last_request"]
    return last


# ---------------------------------------------------------------------------------------------
# The mock, through Google's own SDK


@pytest.fixture(scope="module")
def authed_mock() -> Iterator[str]:
    with run_asgi_app(create_mock_app("gemini", FaultSettings(stream_chunks=4), require_auth=True)) as url:
        yield url


def test_google_genai_sdk_reads_the_mock(authed_mock: str) -> None:
    options = genai_types.HttpOptions(base_url=authed_mock, api_version="v1beta")
    sdk = genai.Client(api_key="test-key", http_options=options)
    reply = sdk.models.generate_content(model="gemini-2.5-flash", contents="hello mock")
    assert reply.text == "Mock reply from gemini-2.5-flash: hello mock"
    assert reply.usage_metadata is not None and reply.usage_metadata.thoughts_token_count == 8
    pieces = [c.text for c in sdk.models.generate_content_stream(model="gemini-2.5-flash", contents="hello mock")]
    assert len(pieces) == 4 and "".join(p or "" for p in pieces) == reply.text
    count = sdk.models.count_tokens(model="gemini-2.5-flash", contents="hello mock")
    assert count.total_tokens == reply.usage_metadata.prompt_token_count
    config = genai_types.EmbedContentConfig(output_dimensionality=16)
    embedded = sdk.models.embed_content(model="gemini-embedding-001", contents=["a", "b"], config=config)
    assert [len(e.values or ()) for e in embedded.embeddings or ()] == [16, 16]
    assert "models/gemini-2.5-flash" in [m.name for m in sdk.models.list()]


@pytest.mark.parametrize(("api_version", "served_as"), [(None, "v1"), ("v1", "v1"), ("v1beta", "v1beta")])
def test_google_genai_reaches_the_mock_on_every_api_version(
    authed_mock: str, api_version: str | None, served_as: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # None: the SDK's own default (v1 in current google-genai), the path its users hit first.
    monkeypatch.delenv("GOOGLE_GENAI_API_VERSION", raising=False)
    options = genai_types.HttpOptions(base_url=authed_mock, api_version=api_version)
    sdk = genai.Client(api_key="test-key", http_options=options)
    before = httpx.get(f"{authed_mock}/_mock/stats").json()["by_path"]
    reply = sdk.models.generate_content(model="gemini-2.5-flash", contents="which path")
    assert reply.text == "Mock reply from gemini-2.5-flash: which path"
    streamed = [
        c.text or "" for c in sdk.models.generate_content_stream(model="gemini-2.5-flash", contents="which path")
    ]
    assert len(streamed) == 4 and "".join(streamed) == reply.text
    assert "models/gemini-2.5-flash" in [m.name for m in sdk.models.list()]
    after = httpx.get(f"{authed_mock}/_mock/stats").json()["by_path"]
    for path in (f"/{served_as}/models/gemini-2.5-flash:generateContent", f"/{served_as}/models"):
        assert after.get(path, 0) == before.get(path, 0) + 1, (path, after)


def test_stream_without_alt_sse_is_one_json_array(authed_mock: str) -> None:
    url = f"{authed_mock}/v1beta/models/gemini-2.5-flash:streamGenerateContent"
    body = {"contents": [{"role": "user", "parts": [{"text": "hi"}]}]}
    resp = httpx.post(url, json=body, headers={"x-goog-api-key": "k"})
    assert resp.status_code == 200 and resp.headers["content-type"].startswith("application/json")
    events = resp.json()
    assert isinstance(events, list) and len(events) == 4
    for event in events:
        genai_types.GenerateContentResponse.model_validate(event)
    sse = httpx.post(f"{url}?alt=sse", json=body, headers={"x-goog-api-key": "k"})
    assert sse.headers["content-type"].startswith("text/event-stream")
    assert sse.text.count("data: ") == 4 and sse.text.endswith("\r\n\r\n")


@pytest.mark.parametrize(
    ("path", "headers", "content", "status", "google_status"),
    [
        ("gemini-2.5-flash:generateContent", {}, b'{"contents": []}', 403, "PERMISSION_DENIED"),
        ("gemini-2.5-flash:generateContent", {"x-goog-api-key": "k"}, b'{"contents": [', 400, "INVALID_ARGUMENT"),
        ("gemini-2.5-flash:teleport", {"x-goog-api-key": "k"}, b"{}", 404, "NOT_FOUND"),
    ],
)
def test_mock_errors_are_google_shaped(
    authed_mock: str, path: str, headers: dict[str, str], content: bytes, status: int, google_status: str
) -> None:
    resp = httpx.post(f"{authed_mock}/v1beta/models/{path}", content=content, headers=headers)
    assert resp.status_code == status
    error = resp.json()["error"]
    assert (error["code"], error["status"]) == (status, google_status) and error["message"]


# ---------------------------------------------------------------------------------------------
# The gateway in front of Gemini, through the OpenAI SDK


def test_plain_and_streamed_chat_agree(client: openai.OpenAI, gemini: Upstream) -> None:
    messages: Any = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Tell me a story"}]
    plain = client.chat.completions.create(model="gem", messages=messages)
    assert plain.choices[0].message.content == "Mock reply from gemini-2.5-flash: Tell me a story"
    assert plain.choices[0].finish_reason == "stop"
    assert plain.usage is not None and plain.usage.completion_tokens_details is not None
    assert plain.usage.completion_tokens_details.reasoning_tokens == 8
    sent = last_body(gemini)
    assert sent["path"] == "/v1beta/models/gemini-2.5-flash:generateContent"
    assert sent["headers"]["x-goog-api-key"] == "upstream-secret-key"
    assert sent["body"]["systemInstruction"] == {"parts": [{"text": "Be brief."}]}
    chunks = list(
        client.chat.completions.create(
            model="gem", messages=messages, stream=True, stream_options={"include_usage": True}
        )
    )
    assert last_body(gemini)["path"].endswith(":streamGenerateContent")
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == plain.choices[0].message.content
    assert [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason] == ["stop"]
    assert chunks[-1].usage is not None and chunks[-1].usage.total_tokens == plain.usage.total_tokens


@pytest.mark.parametrize("model", ["gem", "gem3"])
def test_tool_round_trip_sends_the_result_back_by_name(client: openai.OpenAI, gemini: Upstream, model: str) -> None:
    messages: list[Any] = [{"role": "user", "content": "Weather in Paris?"}]
    first = client.chat.completions.create(model=model, messages=messages, tools=TOOLS)
    choice = first.choices[0]
    assert choice.finish_reason == "tool_calls" and choice.message.tool_calls
    call = choice.message.tool_calls[0]
    assert call.function.name == "get_weather" and orjson.loads(call.function.arguments) == {"city": "mock-city"}  # type: ignore[union-attr]
    messages += [
        choice.message.model_dump(exclude_none=True),
        {"role": "tool", "tool_call_id": call.id, "content": "18C"},
    ]
    # gemini-3 rejects the history unless the call's thoughtSignature comes back (it rides in the id).
    second = client.chat.completions.create(model=model, messages=messages, tools=TOOLS)
    assert second.choices[0].finish_reason == "stop"
    assert "the get_weather tool returned: 18C" in (second.choices[0].message.content or "")
    contents = last_body(gemini)["body"]["contents"]
    assert contents[-1] == {
        "role": "user",
        "parts": [{"functionResponse": {"name": "get_weather", "response": {"output": "18C"}}}],
    }
    assert "thoughtSignature" in contents[-2]["parts"][0]


def test_streamed_tool_call_is_delivered_whole(client: openai.OpenAI) -> None:
    stream = client.chat.completions.create(
        model="gem",
        messages=[{"role": "user", "content": "Weather?"}],
        tools=TOOLS,
        tool_choice={"type": "function", "function": {"name": "get_weather"}},
        stream=True,
    )
    calls = [tc for c in stream if c.choices for tc in c.choices[0].delta.tool_calls or ()]
    assert len(calls) == 1 and calls[0].index == 0 and calls[0].id and calls[0].id.startswith("call_")
    assert calls[0].function is not None and calls[0].function.arguments == '{"city":"mock-city"}'


def test_image_data_url_goes_inline(client: openai.OpenAI, gemini: Upstream) -> None:
    content: Any = [
        {"type": "text", "text": "What is in"},
        {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG_B64}"}},
    ]
    reply = client.chat.completions.create(model="gem", messages=[{"role": "user", "content": content}])
    assert reply.choices[0].message.content == "Mock reply from gemini-2.5-flash: What is in [image]"
    parts = last_body(gemini)["body"]["contents"][0]["parts"]
    assert parts[1] == {"inlineData": {"mimeType": "image/png", "data": PNG_B64}}


def test_json_schema_answers_in_the_schema(client: openai.OpenAI, gemini: Upstream) -> None:
    schema = {
        "type": "object",
        "properties": {"name": {"type": "string"}, "age": {"type": "integer"}},
        "required": ["name", "age"],
        "additionalProperties": False,
    }
    reply = client.chat.completions.create(
        model="gem",
        messages=[{"role": "user", "content": "Who?"}],
        response_format={"type": "json_schema", "json_schema": {"name": "person", "schema": schema, "strict": True}},
    )
    value = orjson.loads(reply.choices[0].message.content or "")
    assert set(value) == {"name", "age"} and isinstance(value["age"], int)
    config = last_body(gemini)["body"]["generationConfig"]
    assert config["responseMimeType"] == "application/json" and config["responseSchema"]["type"] == "OBJECT"
    json_mode = client.chat.completions.create(
        model="gem", messages=[{"role": "user", "content": "json please"}], response_format={"type": "json_object"}
    )
    assert isinstance(orjson.loads(json_mode.choices[0].message.content or ""), dict)


@pytest.mark.parametrize("marker", ["[[content_filter]]", "[[blocked_prompt]]"])
@pytest.mark.parametrize("stream", [False, True])
def test_safety_blocks_are_content_filter(client: openai.OpenAI, marker: str, stream: bool) -> None:
    messages: Any = [{"role": "user", "content": f"something {marker}"}]
    if not stream:
        reply = client.chat.completions.create(model="gem", messages=messages)
        assert (reply.choices[0].finish_reason, reply.choices[0].message.content) == ("content_filter", "")
        return
    chunks = list(client.chat.completions.create(model="gem", messages=messages, stream=True))
    assert [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason] == [
        "content_filter"
    ]
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == ""


@pytest.mark.parametrize(("status", "error"), [(429, openai.RateLimitError), (503, openai.InternalServerError)])
def test_upstream_throttling_passes_retry_after(
    client: openai.OpenAI, gemini: Upstream, status: int, error: type[openai.APIStatusError]
) -> None:
    gemini.set_faults(fail_rate=1.0, status_code=status, retry_after_ms=2500)
    with pytest.raises(error) as err:
        client.chat.completions.create(model="gem", messages=[{"role": "user", "content": "hi"}])
    assert err.value.status_code == status
    assert err.value.response.headers["retry-after"] == "3"
    message = err.value.body["message"] if isinstance(err.value.body, dict) else str(err.value)
    assert "gemini upstream error" in message


def test_upstream_400_keeps_googles_message(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as err:
        client.chat.completions.create(model="gem", messages=[{"role": "user", "content": "hi"}], n=9)
    assert "candidate_count" in str(err.value)


def test_features_gemini_lacks_are_400_before_any_upstream_call(client: openai.OpenAI, gemini: Upstream) -> None:
    with pytest.raises(openai.BadRequestError) as err:
        client.chat.completions.create(model="gem", messages=[{"role": "user", "content": "hi"}], logprobs=True)
    assert "logprobs" in str(err.value)
    assert gemini.stats()["total"] == 0


def test_stream_cut_midway_ends_with_an_error(client: openai.OpenAI, gemini: Upstream) -> None:
    gemini.set_faults(cut_stream_after=2, stream_chunks=6)
    received, error = stream_until_error(client, "gem", "a long story")
    assert received, "the stream had started before the cut"
    assert "stream" in str(error).lower()


def test_stream_error_event_midway_ends_with_an_error(client: openai.OpenAI, gemini: Upstream) -> None:
    gemini.set_faults(stream_error_after=2, stream_chunks=6)
    with pytest.raises(openai.APIError, match="overloaded"):
        list(client.chat.completions.create(model="gem", messages=[{"role": "user", "content": "x"}], stream=True))


def test_embeddings_float_and_base64(client: openai.OpenAI, gemini: Upstream) -> None:
    floats = client.embeddings.create(model="emb", input=["alpha", "beta"], dimensions=8)
    assert [len(d.embedding) for d in floats.data] == [8, 8] and floats.usage.prompt_tokens > 0
    assert last_body(gemini)["path"] == "/v1beta/models/gemini-embedding-001:batchEmbedContents"
    raw = httpx.post(
        f"{client.base_url}embeddings",
        json={"model": "emb", "input": "alpha", "dimensions": 8, "encoding_format": "base64"},
        headers={"authorization": f"Bearer {API_KEY}"},
    ).json()
    decoded = struct.unpack("<8f", base64.b64decode(raw["data"][0]["embedding"]))
    assert decoded == pytest.approx(floats.data[0].embedding, rel=1e-6)
