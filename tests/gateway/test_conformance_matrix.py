"""Conformance matrix: every inbound API against every upstream wire format, over real HTTP.

Inbound: OpenAI chat (the `openai` SDK), Anthropic messages (the `anthropic` SDK), and the native
`/api/v1/query` (+ `/query/stream`). Upstream: one mock per wire format, each validating requests
the way the real API does, plus the in-process `provider: mock`. Each cell runs
{non-streaming, streaming} x {text, tools, image}. The native API takes a prompt only, so its
tools/image cells assert the clear 400 the gateway gives for them.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anthropic
import httpx
import openai
import orjson
import pytest
import yaml

from aimm_gateway.app import create_app
from aimm_gateway.mock import bedrock_wire
from aimm_gateway.mock.faults import FaultSettings
from aimm_gateway.mock.server import create_mock_app
from aimm_gateway.service import Gateway
from tests.gateway.conftest import API_KEY
from tests.servers import run_asgi_app
from tests.unit.test_vertex_provider import service_account_info

PNG = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg=="
CAPS = ["chat", "streaming", "tools", "vision", "json"]
PROMPT = "Describe the conformance matrix"
WEATHER_PARAMS = {
    "type": "object",
    "properties": {"city": {"type": "string"}, "unit": {"type": "string", "enum": ["c", "f"]}},
    "required": ["city", "unit"],
}
OPENAI_TOOL: Any = {
    "type": "function",
    "function": {"name": "get_weather", "description": "Weather for a city", "parameters": WEATHER_PARAMS},
}
ANTHROPIC_TOOL: Any = {"name": "get_weather", "description": "Weather for a city", "input_schema": WEATHER_PARAMS}
TOOL_RESULT = '{"temp": 17, "sky": "overcast"}'

UPSTREAMS = [
    "openai",
    "anthropic",
    "gemini",
    "cohere",
    "bedrock",
    "azure",
    "vertex-gemini",
    "vertex-anthropic",
    "mock",
]
_ENV = {
    "AIMM_MX_API_KEY": API_KEY,
    "AIMM_MX_UPSTREAM_KEY": "upstream-secret-key",
    "AIMM_MX_AWS_KEY": bedrock_wire.ACCESS_KEY_ID,
    "AIMM_MX_AWS_SECRET": bedrock_wire.SECRET_ACCESS_KEY,
}


@dataclass
class Matrix:
    url: str

    def openai(self) -> openai.OpenAI:
        return openai.OpenAI(base_url=f"{self.url}/v1", api_key=API_KEY, max_retries=0, timeout=30)

    def anthropic(self) -> anthropic.Anthropic:
        return anthropic.Anthropic(base_url=self.url, api_key=API_KEY, max_retries=0, timeout=30)

    def native(self, path: str, body: Any) -> httpx.Response:
        return httpx.post(f"{self.url}{path}", json=body, headers={"authorization": f"Bearer {API_KEY}"}, timeout=30)


def _models(mocks: dict[str, str], sa_path: Path) -> list[dict[str, Any]]:
    key = {"env": "AIMM_MX_UPSTREAM_KEY"}
    common = {"capabilities": CAPS, "pricing": {"input_per_1k": "0.001", "output_per_1k": "0.002"}}
    vertex = {"project": "p", "location": "us-central1", "credentials": {"file": str(sa_path)}}
    aws = {
        "region": "us-east-1",
        "access_key_id": {"env": "AIMM_MX_AWS_KEY"},
        "secret_access_key": {"env": "AIMM_MX_AWS_SECRET"},
    }
    return [
        {"name": "openai", "provider": "openai_compatible", "base_url": f"{mocks['openai']}/v1", "api_key": key, **common},
        {"name": "anthropic", "provider": "anthropic", "model": "claude-sonnet-4-6", "base_url": mocks["anthropic"], "api_key": key, **common},
        {"name": "gemini", "provider": "gemini", "model": "gemini-2.5-flash", "base_url": mocks["gemini"], "api_key": key, **common},
        {"name": "cohere", "provider": "cohere", "model": "command-a-vision-07-2025", "base_url": mocks["cohere"], "api_key": key, **common},
        {"name": "bedrock", "provider": "bedrock", "model": "anthropic.claude-3-5-sonnet-20240620-v1:0", "base_url": mocks["bedrock"], "bedrock": aws, **common},
        {"name": "azure", "provider": "azure", "model": "gpt-4o", "base_url": mocks["azure"], "api_key": key, **common},
        {"name": "vertex-gemini", "provider": "vertex", "model": "gemini-2.5-flash", "base_url": mocks["vertex"], "vertex": {**vertex, "publisher": "google"}, **common},
        {"name": "vertex-anthropic", "provider": "vertex", "model": "claude-sonnet-4-5@20250929", "base_url": mocks["vertex"], "vertex": {**vertex, "publisher": "anthropic"}, **common},
        {"name": "mock", "provider": "mock", **common},
    ]  # fmt: skip


@pytest.fixture(scope="module")
def matrix(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Matrix]:
    saved = {k: os.environ.get(k) for k in _ENV}
    os.environ.update(_ENV)
    tmp = tmp_path_factory.mktemp("matrix")
    try:
        with ExitStack() as stack:
            mocks = {
                fmt: stack.enter_context(run_asgi_app(create_mock_app(fmt, FaultSettings(stream_chunks=4))))
                for fmt in ("openai", "anthropic", "gemini", "cohere", "bedrock", "azure", "vertex")
            }
            info, public_pem = service_account_info(f"{mocks['vertex']}/token")
            sa_path = tmp / "sa.json"
            sa_path.write_bytes(orjson.dumps(info))
            httpx.post(
                f"{mocks['vertex']}/_mock/vertex", json={"keys": {info["private_key_id"]: public_pem}}
            ).raise_for_status()
            config = {
                "auth": {"api_keys": [{"name": "matrix", "key": {"env": "AIMM_MX_API_KEY"}}]},
                "retries": {"attempts": 1},
                "models": _models(mocks, sa_path),
            }
            path = tmp / "gateway.yaml"
            path.write_text(yaml.safe_dump(config, sort_keys=False))
            gateway = Gateway.from_file(path)
            assert not gateway.runtime.unusable, gateway.runtime.unusable
            yield Matrix(stack.enter_context(run_asgi_app(create_app(gateway))))
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _image_content_openai() -> list[dict[str, Any]]:
    return [
        {"type": "text", "text": PROMPT},
        {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}},
    ]


def _image_content_anthropic() -> list[dict[str, Any]]:
    return [
        {"type": "text", "text": PROMPT},
        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG}},
    ]


# -- OpenAI chat inbound -------------------------------------------------------------------------


def _openai_text(client: openai.OpenAI, model: str, stream: bool, content: Any) -> tuple[str, str | None, int]:
    messages: Any = [{"role": "user", "content": content}]
    if not stream:
        r = client.chat.completions.create(model=model, messages=messages, max_tokens=200)
        assert r.usage is not None
        return r.choices[0].message.content or "", r.choices[0].finish_reason, r.usage.completion_tokens
    text, finish, tokens = "", None, 0
    for c in client.chat.completions.create(
        model=model, messages=messages, max_tokens=200, stream=True, stream_options={"include_usage": True}
    ):
        if c.choices:
            text += c.choices[0].delta.content or ""
            finish = c.choices[0].finish_reason or finish
        if c.usage is not None:
            tokens = c.usage.completion_tokens
    return text, finish, tokens


def _openai_tool_call(client: openai.OpenAI, model: str, stream: bool, messages: Any) -> tuple[str, str, str | None]:
    if not stream:
        r = client.chat.completions.create(model=model, messages=messages, tools=[OPENAI_TOOL], max_tokens=200)
        call = (r.choices[0].message.tool_calls or [])[0]
        return call.id, call.function.arguments, r.choices[0].finish_reason  # type: ignore[union-attr]
    call_id, args, finish = "", "", None
    for c in client.chat.completions.create(
        model=model, messages=messages, tools=[OPENAI_TOOL], max_tokens=200, stream=True
    ):
        if not c.choices:
            continue
        for tc in c.choices[0].delta.tool_calls or []:
            assert tc.index == 0
            call_id = tc.id or call_id
            args += (tc.function.arguments or "") if tc.function else ""
        finish = c.choices[0].finish_reason or finish
    return call_id, args, finish


def check_openai(m: Matrix, upstream: str, stream: bool, kind: str) -> None:
    client = m.openai()
    if kind in ("text", "image"):
        content = PROMPT if kind == "text" else _image_content_openai()
        text, finish, tokens = _openai_text(client, upstream, stream, content)
        assert PROMPT in text and finish == "stop" and tokens > 0
        if stream:
            assert text == _openai_text(client, upstream, False, content)[0]  # same answer both ways
        return
    messages: Any = [{"role": "user", "content": "What is the weather in Lisbon?"}]
    call_id, arguments, finish = _openai_tool_call(client, upstream, stream, messages)
    args = json.loads(arguments)
    assert finish == "tool_calls" and call_id and set(args) == {"city", "unit"} and args["unit"] in ("c", "f")
    messages += [
        {"role": "assistant", "content": None, "tool_calls": [{"id": call_id, "type": "function", "function": {"name": "get_weather", "arguments": arguments}}]},
        {"role": "tool", "tool_call_id": call_id, "content": TOOL_RESULT},
    ]  # fmt: skip
    final = client.chat.completions.create(model=upstream, messages=messages, tools=[OPENAI_TOOL], max_tokens=200)
    assert final.choices[0].finish_reason == "stop" and "17" in (final.choices[0].message.content or "")


# -- Anthropic messages inbound ------------------------------------------------------------------


def _anthropic_message(client: anthropic.Anthropic, stream: bool, **kwargs: Any) -> anthropic.types.Message:
    if not stream:
        return client.messages.create(max_tokens=200, **kwargs)
    with client.messages.stream(max_tokens=200, **kwargs) as s:
        return s.get_final_message()


def check_anthropic(m: Matrix, upstream: str, stream: bool, kind: str) -> None:
    client = m.anthropic()
    if kind in ("text", "image"):
        content: Any = PROMPT if kind == "text" else _image_content_anthropic()
        msg = _anthropic_message(client, stream, model=upstream, messages=[{"role": "user", "content": content}])
        text = "".join(b.text for b in msg.content if b.type == "text")
        assert PROMPT in text and msg.stop_reason == "end_turn" and msg.usage.output_tokens > 0
        return
    messages: Any = [{"role": "user", "content": "What is the weather in Lisbon?"}]
    msg = _anthropic_message(client, stream, model=upstream, messages=messages, tools=[ANTHROPIC_TOOL])
    uses = [b for b in msg.content if b.type == "tool_use"]
    assert msg.stop_reason == "tool_use" and len(uses) == 1 and uses[0].name == "get_weather"
    assert set(uses[0].input) == {"city", "unit"}  # type: ignore[arg-type]
    messages += [
        {"role": "assistant", "content": [b.model_dump(exclude_none=True) for b in msg.content]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": uses[0].id, "content": TOOL_RESULT}]},
    ]
    final = _anthropic_message(client, False, model=upstream, messages=messages, tools=[ANTHROPIC_TOOL])
    assert final.stop_reason == "end_turn" and "17" in "".join(b.text for b in final.content if b.type == "text")


# -- native inbound --------------------------------------------------------------------------------


def check_native(m: Matrix, upstream: str, stream: bool, kind: str) -> None:
    path = "/api/v1/query/stream" if stream else "/api/v1/query"
    if kind != "text":
        # The native API takes a prompt; tools and images are the OpenAI/Anthropic APIs' job.
        extra = {"tools": [OPENAI_TOOL]} if kind == "tools" else {"images": [f"data:image/png;base64,{PNG}"]}
        resp = m.native(path, {"prompt": PROMPT, "model": upstream, **extra})
        assert resp.status_code == 400, resp.text
        assert resp.json()["error"]["type"] == "invalid_request_error" and next(iter(extra)) in resp.text
        return
    resp = m.native(path, {"prompt": PROMPT, "model": upstream, "max_tokens": 200})
    assert resp.status_code == 200, resp.text
    if not stream:
        body = resp.json()
        assert PROMPT in body["text"] and body["model"] == upstream and body["usage"]["total_cost"] > 0
        return
    events = [orjson.loads(line[6:]) for line in resp.text.splitlines() if line.startswith("data: ")]
    text = "".join(e["text"] for e in events if e["type"] == "content")
    assert PROMPT in text and events[-1]["type"] == "usage" and events[-1]["usage"]["completion_tokens"] > 0


CHECKS = {"openai": check_openai, "anthropic": check_anthropic, "native": check_native}


@pytest.mark.parametrize("kind", ["text", "tools", "image"])
@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
@pytest.mark.parametrize("upstream", UPSTREAMS)
@pytest.mark.parametrize("inbound", list(CHECKS))
def test_matrix(matrix: Matrix, inbound: str, upstream: str, stream: bool, kind: str) -> None:
    CHECKS[inbound](matrix, upstream, stream, kind)
