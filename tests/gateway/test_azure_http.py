"""Azure OpenAI end to end: the openai SDK -> gateway -> Azure mock, over real loopback HTTP.

The mock checks what Azure checks (deployment URL, api-version, api-key or bearer token), so
its view of the last request (`/_mock/stats`) is what Azure would have received. The
`openai.AzureOpenAI` client pointed straight at the mock shows the mock itself is faithful.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import httpx
import openai
import pytest

from aimm_gateway.mock.azure_wire import OUTPUT_FILTER_MARKER, PROMPT_FILTER_MARKER
from tests.gateway.conftest import API_KEY, RunningGateway, Upstream, base_config

UPSTREAM_KEY = "upstream-secret-key"  # what conftest puts in AIMM_TEST_UPSTREAM_KEY
WEATHER_TOOL: Any = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather for a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}


def azure_model(name: str, upstream: Upstream, **azure: Any) -> dict[str, Any]:
    return {
        "name": name,
        "provider": "azure",
        "base_url": upstream.url,
        "api_key": {"env": "AIMM_TEST_UPSTREAM_KEY"},
        "azure": {"deployment": "gpt-4o", **azure},
        "capabilities": ["chat", "streaming", "tools", "json", "embeddings"],
    }


@pytest.fixture
def azure(upstreams: Callable[..., Upstream]) -> Upstream:
    return upstreams("azure")


@pytest.fixture
def gw(azure: Upstream, start_gateway: Callable[[dict[str, Any]], RunningGateway]) -> RunningGateway:
    models = [
        azure_model("az", azure),
        azure_model("az-entra", azure, auth="entra"),
        azure_model("az-embed", azure, deployment="text-embedding-3-small"),
        azure_model("az-bad-version", azure, api_version="latest"),
    ]
    return start_gateway(base_config(models))


def client(gw: RunningGateway) -> openai.OpenAI:
    return openai.OpenAI(base_url=gw.v1, api_key=API_KEY, max_retries=0)


def last_request(upstream: Upstream) -> dict[str, Any]:
    data: dict[str, Any] = upstream.stats()["last_request"]
    return data


def user(text: str) -> list[Any]:
    return [{"role": "user", "content": text}]


def test_chat_hits_the_deployment_url_with_api_version_and_api_key(gw: RunningGateway, azure: Upstream) -> None:
    resp = client(gw).chat.completions.with_raw_response.create(model="az", messages=user("Hello Azure"))
    completion = resp.parse()
    assert completion.choices[0].message.content == "Mock reply from gpt-4o: Hello Azure"
    assert completion.choices[0].finish_reason == "stop"
    assert completion.usage is not None and completion.usage.total_tokens > 0
    assert resp.headers["x-aimm-provider"] == "azure"
    seen = last_request(azure)
    assert seen["path"] == "/openai/deployments/gpt-4o/chat/completions?api-version=2024-10-21"
    assert seen["headers"]["api-key"] == UPSTREAM_KEY
    assert "authorization" not in seen["headers"]
    assert "model" not in seen["body"]  # the deployment picks the model


def test_streaming_with_usage(gw: RunningGateway) -> None:
    plain = client(gw).chat.completions.create(model="az", messages=user("Stream please"))
    chunks = list(
        client(gw).chat.completions.create(
            model="az", messages=user("Stream please"), stream=True, stream_options={"include_usage": True}
        )
    )
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == plain.choices[0].message.content
    assert all(c.choices or c.usage for c in chunks)  # Azure's prompt-filter prelude is not passed on
    usage = [c.usage for c in chunks if c.usage is not None]
    assert len(usage) == 1 and plain.usage is not None
    assert usage[0].completion_tokens == plain.usage.completion_tokens


def test_tool_call_round_trip(gw: RunningGateway) -> None:
    first = client(gw).chat.completions.create(model="az", messages=user("Weather in Paris?"), tools=[WEATHER_TOOL])
    call = (first.choices[0].message.tool_calls or [])[0]
    assert first.choices[0].finish_reason == "tool_calls"
    assert call.function.name == "get_weather"  # type: ignore[union-attr]
    assert "city" in json.loads(call.function.arguments)  # type: ignore[union-attr]
    messages = [
        *user("Weather in Paris?"),
        first.choices[0].message.model_dump(exclude_none=True),
        {"role": "tool", "tool_call_id": call.id, "content": "sunny, 21C"},
    ]
    final = client(gw).chat.completions.create(model="az", messages=messages, tools=[WEATHER_TOOL])
    assert "sunny, 21C" in (final.choices[0].message.content or "")


def test_embeddings(gw: RunningGateway, azure: Upstream) -> None:
    result = client(gw).embeddings.create(model="az-embed", input=["one", "two"])
    assert len(result.data) == 2 and len(result.data[0].embedding) == 1536
    seen = last_request(azure)
    assert seen["path"] == "/openai/deployments/text-embedding-3-small/embeddings?api-version=2024-10-21"
    assert seen["headers"]["api-key"] == UPSTREAM_KEY


def test_entra_mode_sends_a_bearer_token(gw: RunningGateway, azure: Upstream) -> None:
    client(gw).chat.completions.create(model="az-entra", messages=user("hi"))
    headers = last_request(azure)["headers"]
    assert headers["authorization"] == f"Bearer {UPSTREAM_KEY}"
    assert "api-key" not in headers


def test_api_version_is_what_the_mock_checks(gw: RunningGateway) -> None:
    with pytest.raises(openai.NotFoundError) as info:
        client(gw).chat.completions.create(model="az-bad-version", messages=user("hi"))
    assert "Resource not found" in info.value.message


def test_prompt_filter_is_a_400_with_azures_message(gw: RunningGateway) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        client(gw).chat.completions.create(model="az", messages=user(f"something {PROMPT_FILTER_MARKER}"))
    assert info.value.status_code == 400
    assert info.value.code == "content_filter"
    assert "content management policy" in info.value.message


def test_output_filter_ends_with_content_filter(gw: RunningGateway) -> None:
    completion = client(gw).chat.completions.create(model="az", messages=user(f"story {OUTPUT_FILTER_MARKER}"))
    assert completion.choices[0].finish_reason == "content_filter"
    chunks = list(
        client(gw).chat.completions.create(model="az", messages=user(f"story {OUTPUT_FILTER_MARKER}"), stream=True)
    )
    assert [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason] == [
        "content_filter"
    ]


# ---------------------------------------------------------------------------------------------
# The mock against the official Azure client


def test_azure_sdk_talks_to_the_mock_directly(azure: Upstream) -> None:
    sdk = openai.AzureOpenAI(azure_endpoint=azure.url, api_key="k", api_version="2024-10-21", max_retries=0)
    completion = sdk.chat.completions.create(model="gpt-4o-mini", messages=user("Hi there"))
    assert completion.choices[0].message.content == "Mock reply from gpt-4o-mini: Hi there"
    chunks = list(
        sdk.chat.completions.create(
            model="gpt-4o-mini", messages=user("Hi there"), stream=True, stream_options={"include_usage": True}
        )
    )
    assert (
        "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == completion.choices[0].message.content
    )
    assert chunks[-1].usage is not None
    tools = sdk.chat.completions.create(model="gpt-4o", messages=user("Weather?"), tools=[WEATHER_TOOL])
    assert tools.choices[0].finish_reason == "tool_calls"
    assert len(sdk.embeddings.create(model="text-embedding-3-small", input="hello").data) == 1
    seen = last_request(azure)
    assert seen["path"] == "/openai/deployments/text-embedding-3-small/embeddings?api-version=2024-10-21"
    assert seen["headers"]["api-key"] == "k"
    with pytest.raises(openai.BadRequestError) as info:
        sdk.chat.completions.create(model="gpt-4o", messages=user(PROMPT_FILTER_MARKER))
    assert info.value.code == "content_filter"


def test_mock_takes_entra_tokens_and_refuses_missing_credentials_or_api_version(azure: Upstream) -> None:
    sdk = openai.AzureOpenAI(azure_endpoint=azure.url, azure_ad_token="entra-token", api_version="2024-10-21")
    assert sdk.chat.completions.create(model="gpt-4o", messages=user("hi")).choices[0].message.content
    assert last_request(azure)["headers"]["authorization"] == "Bearer entra-token"
    url = f"{azure.url}/openai/deployments/gpt-4o/chat/completions"
    body = {"messages": user("hi")}
    missing_key = httpx.post(url, params={"api-version": "2024-10-21"}, json=body)
    assert missing_key.status_code == 401 and set(missing_key.json()["error"]) == {"code", "message"}
    missing_version = httpx.post(url, headers={"api-key": "k"}, json=body)
    assert missing_version.status_code == 400
    assert missing_version.json()["error"]["code"] == "MissingApiVersionParameter"
