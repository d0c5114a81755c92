"""Bedrock over real loopback: the openai SDK -> gateway -> the SigV4-checking Bedrock mock.

The mock recomputes every signature and validates bodies as Bedrock does, so a request it accepts
is signed and shaped the way AWS wants it. A real boto3 client against the same mock checks the
mock itself: its JSON, its binary event stream and its errors must read as AWS's do.
"""

from __future__ import annotations

import base64
import struct
from collections.abc import Callable
from typing import Any

import boto3
import botocore.exceptions
import openai
import orjson
import pytest
from botocore.config import Config as BotoConfig

from aimm_gateway.mock import bedrock_wire
from tests.gateway.conftest import RunningGateway, Upstream, base_config
from tests.gateway.openai_calls import (
    assert_unit_embeddings,
    client,
    last_request,
    rate_limited,
    stream_text,
    stream_until_error,
    user,
)
from tests.unit.test_bedrock_adapter import (
    CLOCK_TOOL,
    PERSON_FORMAT,
    PNG_B64,
    WEATHER_TOOL,
    assert_converse_request,
)

Start = Callable[[dict[str, Any]], RunningGateway]
MODEL_ID = "anthropic.claude-3-5-sonnet-20240620-v1:0"
ARN = "arn:aws:bedrock:us-east-1:123456789012:inference-profile/us.anthropic.claude-3-5-sonnet-20240620-v1:0"
ALL_CAPS = ["chat", "streaming", "tools", "vision", "json", "embeddings"]


@pytest.fixture(autouse=True)
def _aws_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIMM_TEST_AWS_KEY", bedrock_wire.ACCESS_KEY_ID)
    monkeypatch.setenv("AIMM_TEST_AWS_SECRET", bedrock_wire.SECRET_ACCESS_KEY)


def bedrock_model(name: str, upstream: Upstream, model_id: str = MODEL_ID, **extra: Any) -> dict[str, Any]:
    return {
        "name": name,
        "provider": "bedrock",
        "model": model_id,
        "base_url": upstream.url,
        "bedrock": {
            "region": "us-east-1",
            "access_key_id": {"env": "AIMM_TEST_AWS_KEY"},
            "secret_access_key": {"env": "AIMM_TEST_AWS_SECRET"},
        },
        "pricing": {"input_per_1k": "0.003", "output_per_1k": "0.015"},
        "capabilities": ALL_CAPS,
        **extra,
    }


@pytest.fixture
def upstream(upstreams: Callable[..., Upstream]) -> Upstream:
    return upstreams("bedrock", stream_chunks=5)


@pytest.fixture(params=["h1", "aiohttp", "httpx"])
def gw(request: pytest.FixtureRequest, upstream: Upstream, start_gateway: Start) -> RunningGateway:
    models = [
        bedrock_model("b", upstream),
        bedrock_model("arn", upstream, ARN),
        bedrock_model("titan", upstream, "amazon.titan-embed-text-v2:0"),
    ]
    return start_gateway(base_config(models, server={"upstream_client": request.param}, retries={"attempts": 2}))


# ---------------------------------------------------------------------------------------------
# Through the gateway


@pytest.mark.parametrize("model", ["b", "arn"])
def test_plain_chat_is_signed_and_valid(gw: RunningGateway, upstream: Upstream, model: str) -> None:
    messages = [{"role": "system", "content": "Be brief."}, user("Say hello")]
    resp = client(gw).chat.completions.with_raw_response.create(model=model, messages=messages, max_tokens=64)
    completion = resp.parse()
    assert completion.choices[0].message.content == f"Mock reply from {MODEL_ID if model == 'b' else ARN}: Say hello"
    assert completion.choices[0].finish_reason == "stop"
    assert completion.usage is not None and completion.usage.total_tokens > 0
    assert resp.headers["x-aimm-provider"] == "bedrock"
    sent = last_request(upstream)
    assert sent["path"] == f"/model/{MODEL_ID if model == 'b' else ARN}/converse"
    assert sent["headers"]["authorization"].startswith(f"AWS4-HMAC-SHA256 Credential={bedrock_wire.ACCESS_KEY_ID}/")
    assert_converse_request(sent["body"])
    assert sent["body"]["system"] == [{"text": "Be brief."}]


def test_stream_reassembles_to_the_plain_answer(gw: RunningGateway) -> None:
    messages = [user("Tell me something about streaming responses")]
    plain = client(gw).chat.completions.create(model="b", messages=messages)
    chunks = list(
        client(gw).chat.completions.create(
            model="b", messages=messages, stream=True, stream_options={"include_usage": True}
        )
    )
    assert stream_text(chunks) == plain.choices[0].message.content
    assert sum(1 for c in chunks if c.choices and c.choices[0].delta.content) >= 3
    assert [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason] == ["stop"]
    assert chunks[-1].usage is not None and plain.usage is not None
    assert chunks[-1].usage.completion_tokens == plain.usage.completion_tokens
    assert chunks[-1].usage.prompt_tokens == plain.usage.prompt_tokens


def test_parallel_tool_calls_round_trip_plain_and_streamed(gw: RunningGateway, upstream: Upstream) -> None:
    api = client(gw)
    messages: list[Any] = [user("Weather and time in Paris?")]
    first = api.chat.completions.create(model="b", messages=messages, tools=[WEATHER_TOOL, CLOCK_TOOL])
    calls = first.choices[0].message.tool_calls or []
    assert first.choices[0].finish_reason == "tool_calls"
    assert [c.function.name for c in calls] == ["get_weather", "get_time"]
    assert orjson.loads(calls[0].function.arguments) == {"city": "mock-city"}

    streamed = list(
        api.chat.completions.create(model="b", messages=messages, tools=[WEATHER_TOOL, CLOCK_TOOL], stream=True)
    )
    deltas = [tc for c in streamed if c.choices for tc in c.choices[0].delta.tool_calls or ()]
    assert [(d.index, d.id) for d in deltas if d.id] == [(0, calls[0].id), (1, calls[1].id)]
    for k, call in enumerate(calls):
        args = "".join(d.function.arguments or "" for d in deltas if d.index == k and d.function)
        assert args == call.function.arguments

    messages += [
        first.choices[0].message.model_dump(exclude_none=True),
        {"role": "tool", "tool_call_id": calls[0].id, "content": "18C and sunny"},
        {"role": "tool", "tool_call_id": calls[1].id, "content": "noon"},
    ]
    second = api.chat.completions.create(model="b", messages=messages, tools=[WEATHER_TOOL, CLOCK_TOOL])
    assert second.choices[0].finish_reason == "stop"
    assert (second.choices[0].message.content or "").endswith("the get_time tool returned: noon")
    sent = last_request(upstream)["body"]
    assert_converse_request(sent)
    assert [b["toolResult"]["toolUseId"] for b in sent["messages"][2]["content"]] == [c.id for c in calls]


def test_image_data_url_is_sent_as_bytes_and_http_urls_are_a_clear_400(gw: RunningGateway, upstream: Upstream) -> None:
    api = client(gw)
    image = {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG_B64}"}}
    answer = api.chat.completions.create(model="b", messages=[user([{"type": "text", "text": "What is it?"}, image])])
    assert answer.choices[0].message.content
    block = last_request(upstream)["body"]["messages"][0]["content"][1]
    assert block == {"image": {"format": "png", "source": {"bytes": PNG_B64}}}
    web = {"type": "image_url", "image_url": {"url": "https://img.test/cat.png"}}
    with pytest.raises(openai.BadRequestError) as info:
        api.chat.completions.create(model="b", messages=[user([web])])
    assert "does not fetch image URLs" in str(info.value)


def test_json_schema_answer_plain_and_streamed(gw: RunningGateway) -> None:
    api = client(gw)
    messages = [user("Invent a person")]
    plain = api.chat.completions.create(model="b", messages=messages, response_format=PERSON_FORMAT)
    content = plain.choices[0].message.content or ""
    assert set(orjson.loads(content)) == {"name", "age"}
    chunks = list(api.chat.completions.create(model="b", messages=messages, response_format=PERSON_FORMAT, stream=True))
    assert stream_text(chunks) == content


def test_titan_embeddings_through_the_openai_sdk(gw: RunningGateway) -> None:
    result = client(gw).embeddings.create(model="titan", input=["hello", "world"], dimensions=256)
    assert_unit_embeddings(result, 2, 256, prompt_tokens=4)


def test_throttling_is_429_with_retry_after(gw: RunningGateway, upstream: Upstream) -> None:
    upstream.set_faults(fail_rate=1, status_code=429, retry_after_ms=2000)
    error = rate_limited(client(gw), "b")
    assert int(error.response.headers["retry-after"]) >= 2
    assert "ThrottlingException: Too many requests" in error.message


def test_mid_stream_exception_frame_ends_with_an_error_event(gw: RunningGateway, upstream: Upstream) -> None:
    upstream.set_faults(stream_error_after=3)
    received, error = stream_until_error(client(gw), "b")
    assert received and stream_text(received)
    assert "modelStreamErrorException" in str(error)


def test_cut_stream_ends_with_an_error_event(gw: RunningGateway, upstream: Upstream) -> None:
    upstream.set_faults(cut_stream_after=3)
    received, error = stream_until_error(client(gw), "b")
    assert received
    # aiohttp notices the broken chunked body itself; httpx ends quietly and the adapter sees no messageStop.
    assert "stream" in str(error)


def test_a_stream_cut_after_message_stop_still_answers(gw: RunningGateway, upstream: Upstream) -> None:
    # Frames: messageStart, 5 text deltas, contentBlockStop, messageStop | metadata (lost).
    upstream.set_faults(cut_stream_after=8)
    messages = [user("Say hello")]
    chunks = list(
        client(gw).chat.completions.create(
            model="b", messages=messages, stream=True, stream_options={"include_usage": True}
        )
    )
    upstream.set_faults(cut_stream_after=None)
    plain = client(gw).chat.completions.create(model="b", messages=messages)
    assert stream_text(chunks) == plain.choices[0].message.content
    assert chunks[-1].usage is not None and chunks[-1].usage.total_tokens == 0  # the count was in the lost frame


def test_wrong_secret_is_refused_by_the_mock_and_a_502(
    upstream: Upstream, start_gateway: Start, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AIMM_TEST_AWS_SECRET", "not-the-secret")
    gw = start_gateway(base_config([bedrock_model("b", upstream)], retries={"attempts": 1}))
    with pytest.raises(openai.APIStatusError) as info:
        client(gw).chat.completions.create(model="b", messages=[user("hi")])
    assert info.value.status_code == 502
    assert upstream.stats()["by_status"] == {"403": 1}


def test_missing_credentials_make_the_model_unusable(
    upstream: Upstream, start_gateway: Start, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("AIMM_TEST_AWS_SECRET")
    gw = start_gateway(base_config([bedrock_model("b", upstream)]))
    with pytest.raises(openai.APIStatusError) as info:
        client(gw).chat.completions.create(model="b", messages=[user("hi")])
    assert info.value.status_code == 503
    assert upstream.stats()["total"] == 0


# ---------------------------------------------------------------------------------------------
# The mock against a real boto3 client


def boto3_client(upstream: Upstream, secret: str = bedrock_wire.SECRET_ACCESS_KEY) -> Any:
    return boto3.client(
        "bedrock-runtime",
        region_name="us-east-1",
        endpoint_url=upstream.url,
        aws_access_key_id=bedrock_wire.ACCESS_KEY_ID,
        aws_secret_access_key=secret,
        config=BotoConfig(retries={"total_max_attempts": 1, "mode": "standard"}),
    )


def test_boto3_converse_and_converse_stream_against_the_mock(upstream: Upstream) -> None:
    boto = boto3_client(upstream)
    messages = [
        {
            "role": "user",
            "content": [
                {"text": "Hello"},
                {"image": {"format": "png", "source": {"bytes": base64.b64decode(PNG_B64)}}},
            ],
        }
    ]
    plain = boto.converse(modelId=MODEL_ID, messages=messages, inferenceConfig={"maxTokens": 100})
    text = plain["output"]["message"]["content"][0]["text"]
    assert text.startswith(f"Mock reply from {MODEL_ID}") and plain["stopReason"] == "end_turn"
    assert plain["ResponseMetadata"]["HTTPStatusCode"] == 200 and plain["ResponseMetadata"]["RequestId"]
    events = list(boto.converse_stream(modelId=MODEL_ID, messages=messages)["stream"])
    assert "".join(e["contentBlockDelta"]["delta"]["text"] for e in events if "contentBlockDelta" in e) == text
    assert events[-1]["metadata"]["usage"] == plain["usage"]


def test_boto3_sees_the_mocks_errors_as_aws_errors(upstream: Upstream) -> None:
    boto = boto3_client(upstream)
    messages = [{"role": "user", "content": [{"text": "Hello"}]}]
    with pytest.raises(botocore.exceptions.ClientError) as info:
        boto.converse(modelId=MODEL_ID, messages=[{"role": "assistant", "content": [{"text": "Hi"}]}])
    assert info.value.response["Error"]["Code"] == "ValidationException"
    assert "start with a user message" in info.value.response["Error"]["Message"]
    with pytest.raises(botocore.exceptions.ClientError) as info:
        boto3_client(upstream, secret="wrong").converse(modelId=MODEL_ID, messages=messages)
    assert info.value.response["Error"]["Code"] == "InvalidSignatureException"
    upstream.set_faults(fail_next=1, status_code=429)
    with pytest.raises(boto.exceptions.ThrottlingException):
        boto.converse(modelId=MODEL_ID, messages=messages)
    upstream.set_faults(stream_error_after=2)
    with pytest.raises(botocore.exceptions.EventStreamError) as stream_info:
        list(boto.converse_stream(modelId=MODEL_ID, messages=messages)["stream"])
    assert stream_info.value.response["Error"]["Code"] == "modelStreamErrorException"


def test_boto3_titan_embeddings_against_the_mock(upstream: Upstream) -> None:
    result = boto3_client(upstream).invoke_model(
        modelId="amazon.titan-embed-text-v2:0", body=orjson.dumps({"inputText": "hello", "dimensions": 512})
    )
    payload = orjson.loads(result["body"].read())
    assert len(payload["embedding"]) == 512 and payload["inputTextTokenCount"] == 2
    assert struct.calcsize("<f") == 4  # (float32 base64 is what the gateway hands the openai SDK)
