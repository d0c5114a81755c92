"""Vertex AI over real loopback HTTP: service-account tokens, Gemini and Claude publishers.

The gateway gets its access token from the mock's `/token` with a JWT signed by a freshly generated
service-account key (the mock verifies the RS256 signature with the registered public key). The
official SDKs are the oracles: `google-genai` (vertexai mode) and `AnthropicVertex` read the mock,
`openai` reads the gateway.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import anthropic
import httpx
import openai
import orjson
import pytest
from google import genai
from google.genai import types as genai_types
from google.oauth2 import service_account

from aimm_gateway.canonical import validate_chat
from aimm_gateway.config import ModelConfig, Timeouts
from aimm_gateway.providers.base import UpstreamCall
from aimm_gateway.providers.http import UpstreamPools
from aimm_gateway.providers.vertex import CLOUD_PLATFORM_SCOPE, VertexProvider
from tests.gateway.conftest import API_KEY, RunningGateway, Upstream, base_config
from tests.unit.test_gemini_translate import WEATHER_TOOL
from tests.unit.test_vertex_provider import service_account_info

Start = Callable[[dict[str, Any]], RunningGateway]
CLAUDE = "claude-sonnet-4-5@20250929"
TOOLS: Any = [WEATHER_TOOL]  # a dict literal, not the SDK's TypedDict
CAPABILITIES = ["chat", "streaming", "tools", "vision", "json", "embeddings"]
PREFIX = "/v1/projects/p/locations/us-central1/publishers"


class Vertex:
    """A Vertex mock with a service account whose token_uri points at it."""

    def __init__(self, upstream: Upstream, tmp_path: Path) -> None:
        self.upstream = upstream
        self.info, self.public_pem = service_account_info(f"{upstream.url}/token")
        self.sa_path = tmp_path / "sa.json"
        self.sa_path.write_bytes(orjson.dumps(self.info))
        self.settings(keys={self.info["private_key_id"]: self.public_pem})

    def settings(self, **fields: Any) -> None:
        httpx.post(f"{self.upstream.url}/_mock/vertex", json=fields).raise_for_status()

    def model(self, name: str, publisher: str, model: str, **extra: Any) -> dict[str, Any]:
        vertex = {"project": "p", "location": "us-central1", "publisher": publisher,
                  "credentials": {"file": str(self.sa_path)}}  # fmt: skip
        return {"name": name, "provider": "vertex", "model": model, "base_url": self.upstream.url,
                "vertex": vertex, "capabilities": CAPABILITIES, **extra}  # fmt: skip

    def token_fetches(self) -> int:
        return int(self.upstream.stats()["by_path"].get("/token", 0))

    def last(self) -> dict[str, Any]:
        last: dict[str, Any] = self.upstream.stats()["last_request"]
        return last


@pytest.fixture
def vertex(upstreams: Callable[..., Upstream], tmp_path: Path) -> Vertex:
    return Vertex(upstreams("vertex", stream_chunks=5), tmp_path)


@pytest.fixture
def client(vertex: Vertex, start_gateway: Start) -> Iterator[openai.OpenAI]:
    models = [
        vertex.model("gem", "google", "gemini-2.5-flash"),
        vertex.model("claude", "anthropic", CLAUDE),
        vertex.model("emb", "google", "text-embedding-005"),
    ]
    gw = start_gateway(base_config(models, retries={"attempts": 1}))
    with openai.OpenAI(base_url=gw.v1, api_key=API_KEY, max_retries=0) as c:
        yield c


def ask(client: openai.OpenAI, model: str, text: str = "Tell me a story", **extra: Any) -> Any:
    return client.chat.completions.create(model=model, messages=[{"role": "user", "content": text}], **extra)


# ---------------------------------------------------------------------------------------------
# The mock, through Google's and Anthropic's SDKs


def test_official_sdks_read_the_vertex_mock(vertex: Vertex) -> None:
    creds = service_account.Credentials.from_service_account_info(vertex.info, scopes=[CLOUD_PLATFORM_SCOPE])
    options = genai_types.HttpOptions(base_url=vertex.upstream.url, api_version="v1")
    sdk = genai.Client(vertexai=True, project="p", location="us-central1", credentials=creds, http_options=options)
    reply = sdk.models.generate_content(model="gemini-2.5-flash", contents="hello vertex")
    assert reply.text == "Mock reply from gemini-2.5-flash: hello vertex"
    streamed = "".join(
        c.text or "" for c in sdk.models.generate_content_stream(model="gemini-2.5-flash", contents="hello vertex")
    )
    assert streamed == reply.text
    config = genai_types.EmbedContentConfig(output_dimensionality=8)
    embedded = sdk.models.embed_content(model="text-embedding-005", contents=["a b"], config=config)
    assert embedded.embeddings and len(embedded.embeddings[0].values or ()) == 8
    assert creds.token and vertex.token_fetches() == 1  # google-auth got its token from the mock
    claude = anthropic.AnthropicVertex(
        region="us-central1", project_id="p", access_token=creds.token, base_url=f"{vertex.upstream.url}/v1"
    )
    message = claude.messages.create(model=CLAUDE, max_tokens=64, messages=[{"role": "user", "content": "hi"}])
    assert message.content[0].type == "text" and message.content[0].text == f"Mock reply from {CLAUDE}: hi"
    with claude.messages.stream(model=CLAUDE, max_tokens=64, messages=[{"role": "user", "content": "hi"}]) as s:
        assert s.get_final_text() == message.content[0].text


def test_google_genai_default_vertex_api_version_reaches_the_mock(
    vertex: Vertex, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("GOOGLE_GENAI_API_VERSION", raising=False)
    creds = service_account.Credentials.from_service_account_info(vertex.info, scopes=[CLOUD_PLATFORM_SCOPE])
    options = genai_types.HttpOptions(base_url=vertex.upstream.url)  # the SDK picks the version (v1beta1)
    sdk = genai.Client(vertexai=True, project="p", location="us-central1", credentials=creds, http_options=options)
    reply = sdk.models.generate_content(model="gemini-2.5-flash", contents="default version")
    assert reply.text == "Mock reply from gemini-2.5-flash: default version"
    path = "/v1beta1/projects/p/locations/us-central1/publishers/google/models/gemini-2.5-flash:generateContent"
    assert vertex.upstream.stats()["by_path"].get(path) == 1


def test_vertex_routes_need_a_token_from_the_token_endpoint(vertex: Vertex) -> None:
    url = f"{vertex.upstream.url}{PREFIX}/google/models/gemini-2.5-flash:generateContent"
    body = {"contents": [{"role": "user", "parts": [{"text": "hi"}]}]}
    for headers in ({}, {"authorization": "Bearer ya29.made-up"}):
        resp = httpx.post(url, json=body, headers=headers)
        assert resp.status_code == 401
        assert resp.json()["error"]["status"] == "UNAUTHENTICATED"


# ---------------------------------------------------------------------------------------------
# Gemini on Vertex through the gateway


def test_gemini_on_vertex_plain_stream_and_one_token(client: openai.OpenAI, vertex: Vertex) -> None:
    plain = ask(client, "gem")
    assert plain.choices[0].message.content == "Mock reply from gemini-2.5-flash: Tell me a story"
    sent = vertex.last()
    assert sent["path"] == f"{PREFIX}/google/models/gemini-2.5-flash:generateContent"
    assert sent["headers"]["authorization"].startswith("Bearer ya29.mock.")
    chunks = list(ask(client, "gem", stream=True))
    assert vertex.last()["path"].endswith(":streamGenerateContent")
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == plain.choices[0].message.content
    ask(client, "gem")
    assert vertex.token_fetches() == 1  # cached across requests


def test_gemini_on_vertex_tool_round_trip(client: openai.OpenAI, vertex: Vertex) -> None:
    messages: list[Any] = [{"role": "user", "content": "Weather?"}]
    first = client.chat.completions.create(model="gem", messages=messages, tools=TOOLS)
    call = (first.choices[0].message.tool_calls or [])[0]
    messages += [first.choices[0].message.model_dump(exclude_none=True),
                 {"role": "tool", "tool_call_id": call.id, "content": "rain"}]  # fmt: skip
    second = client.chat.completions.create(model="gem", messages=messages, tools=TOOLS)
    assert "the get_weather tool returned: rain" in (second.choices[0].message.content or "")
    parts = vertex.last()["body"]["contents"][-1]["parts"]
    assert parts == [{"functionResponse": {"name": "get_weather", "response": {"output": "rain"}}}]


def test_embeddings_on_vertex(client: openai.OpenAI, vertex: Vertex) -> None:
    result = client.embeddings.create(model="emb", input=["alpha beta", "gamma"], dimensions=16)
    assert [len(d.embedding) for d in result.data] == [16, 16]
    assert result.usage.prompt_tokens == 3 + 2  # Vertex reports token counts per instance
    assert vertex.last()["path"] == f"{PREFIX}/google/models/text-embedding-005:predict"


# ---------------------------------------------------------------------------------------------
# Claude on Vertex through the gateway


def test_claude_on_vertex(client: openai.OpenAI, vertex: Vertex) -> None:
    plain = ask(client, "claude", max_tokens=100)
    assert plain.choices[0].message.content == f"Mock reply from {CLAUDE}: Tell me a story"
    sent = vertex.last()
    assert sent["path"] == f"{PREFIX}/anthropic/models/{CLAUDE}:rawPredict"
    assert sent["body"]["anthropic_version"] == "vertex-2023-10-16" and "model" not in sent["body"]
    chunks = list(ask(client, "claude", stream=True, stream_options={"include_usage": True}))
    assert vertex.last()["path"].endswith(":streamRawPredict")
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == plain.choices[0].message.content
    assert chunks[-1].usage is not None and chunks[-1].usage.prompt_tokens == (
        plain.usage.prompt_tokens if plain.usage else -1
    )


def test_claude_on_vertex_tool_round_trip(client: openai.OpenAI, vertex: Vertex) -> None:
    messages: list[Any] = [{"role": "user", "content": "Weather?"}]
    first = client.chat.completions.create(model="claude", messages=messages, tools=TOOLS)
    call = (first.choices[0].message.tool_calls or [])[0]
    assert first.choices[0].finish_reason == "tool_calls" and call.id.startswith("toolu_")
    messages += [first.choices[0].message.model_dump(exclude_none=True),
                 {"role": "tool", "tool_call_id": call.id, "content": "sun"}]  # fmt: skip
    second = client.chat.completions.create(model="claude", messages=messages, tools=TOOLS)
    assert "the get_weather tool returned: sun" in (second.choices[0].message.content or "")


# ---------------------------------------------------------------------------------------------
# Credentials and tokens


def test_token_refused_by_google_is_an_upstream_auth_error(client: openai.OpenAI, vertex: Vertex) -> None:
    _other_info, other_pem = service_account_info("http://unused/token", key_id="someone-else")
    vertex.settings(keys={"someone-else": other_pem})  # our key id is no longer trusted
    with pytest.raises(openai.APIStatusError) as err:
        ask(client, "gem")
    assert err.value.status_code == 502
    assert "access token" in str(err.value) and "Invalid JWT Signature" in str(err.value)
    assert "PRIVATE KEY" not in str(err.value)


def test_missing_service_account_file_makes_the_model_unusable(vertex: Vertex, start_gateway: Start) -> None:
    model = vertex.model("gem", "google", "gemini-2.5-flash")
    model["vertex"]["credentials"] = {"file": str(vertex.sa_path.with_name("absent.json"))}
    gw = start_gateway(base_config([model]))
    with (
        openai.OpenAI(base_url=gw.v1, api_key=API_KEY, max_retries=0) as c,
        pytest.raises(openai.APIStatusError) as err,
    ):
        ask(c, "gem")
    assert err.value.status_code == 503
    assert vertex.upstream.stats()["total"] == 0


def test_short_lived_tokens_are_refreshed(client: openai.OpenAI, vertex: Vertex) -> None:
    vertex.settings(token_ttl_s=60)  # inside the gateway's 5-minute refresh margin: always "about to expire"
    for _ in range(3):
        ask(client, "gem")
    assert vertex.token_fetches() == 3


async def test_concurrent_first_requests_share_one_token(vertex: Vertex) -> None:
    model = ModelConfig.model_validate(vertex.model("gem", "google", "gemini-2.5-flash"))
    pools = UpstreamPools()
    try:
        provider = VertexProvider(model, vertex.upstream.url, pools)
        body = {"model": "gem", "messages": [{"role": "user", "content": "hi"}]}
        timeouts = Timeouts(connect_s=2, first_byte_s=10, total_s=10, stream_idle_s=5)
        calls = [UpstreamCall(model, validate_chat(body), body, None, timeouts, f"r{i}") for i in range(10)]
        replies = await asyncio.gather(*(provider.complete(c) for c in calls))
    finally:
        await pools.close()
    assert {r["choices"][0]["message"]["content"] for r in replies} == {"Mock reply from gemini-2.5-flash: hi"}
    assert vertex.token_fetches() == 1
