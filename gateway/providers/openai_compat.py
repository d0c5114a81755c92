"""The OpenAI chat-completions wire format: OpenAI and every OpenAI-compatible provider.

The canonical model *is* this format, so requests pass through with only `model` rewritten and
unknown fields kept; streams are asked for usage so cost can always be settled.

Close variants (Azure OpenAI) reuse this adapter: `query` is appended to every URL, `send_model`
says whether the body names the model, and `_upstream_error` can recognise provider error codes.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import orjson

from aimm_gateway.canonical import ChatChunk, ChatCompletion
from aimm_gateway.errors import UpstreamError
from aimm_gateway.presets import AuthStyle
from aimm_gateway.providers.base import EmbeddingCall, UpstreamCall
from aimm_gateway.providers.errors import upstream_error
from aimm_gateway.providers.http import UpstreamPools
from aimm_gateway.providers.sse import iter_sse


class OpenAICompatProvider:
    def __init__(
        self,
        provider: str,
        base_url: str,
        auth: AuthStyle,
        pools: UpstreamPools,
        *,
        query: str = "",
        send_model: bool = True,
    ) -> None:
        self._provider = provider
        suffix = f"?{query}" if query else ""
        self._chat_url = f"{base_url}/chat/completions{suffix}"
        self._embed_url = f"{base_url}/embeddings{suffix}"
        self._auth = auth
        self._send_model = send_model
        self._client = pools.for_url(base_url)

    def _headers(self, api_key: str | None, extra: dict[str, str]) -> dict[str, str]:
        headers = {"content-type": "application/json", "accept": "application/json", **extra}
        if api_key and self._auth is AuthStyle.BEARER:
            headers["authorization"] = f"Bearer {api_key}"
        elif api_key and self._auth is AuthStyle.API_KEY:
            headers["api-key"] = api_key
        return headers

    def _body(self, body: dict[str, Any], upstream_model: str) -> dict[str, Any]:
        if self._send_model:
            return {**body, "model": upstream_model}
        return {k: v for k, v in body.items() if k != "model"}

    def _upstream_error(self, status: int, headers: dict[str, str], body: bytes) -> UpstreamError:
        return upstream_error(self._provider, status, headers, body)

    async def complete(self, call: UpstreamCall) -> ChatCompletion:
        body = self._body(call.body, call.model.upstream_model)
        body.pop("stream", None)
        body.pop("stream_options", None)
        resp = await self._client.post(
            self._chat_url, self._headers(call.api_key, call.model.headers), orjson.dumps(body), call.timeouts
        )
        if resp.status >= 400:
            raise self._upstream_error(resp.status, resp.headers, resp.body)
        return _decode(self._provider, resp.body)

    async def stream(self, call: UpstreamCall) -> AsyncIterator[ChatChunk]:
        body = {**self._body(call.body, call.model.upstream_model), "stream": True}
        body["stream_options"] = {**(body.get("stream_options") or {}), "include_usage": True}
        headers = self._headers(call.api_key, call.model.headers)
        headers["accept"] = "text/event-stream"
        async with self._client.stream(self._chat_url, headers, orjson.dumps(body), call.timeouts) as resp:
            if resp.status >= 400:
                raise self._upstream_error(resp.status, resp.headers, await resp.read_all())
            async for event in iter_sse(resp.chunks):
                if event.data == "[DONE]":
                    return
                data = _decode(self._provider, event.data.encode())
                if "error" in data and "choices" not in data:
                    err = data["error"] if isinstance(data["error"], dict) else {"message": str(data["error"])}
                    raise UpstreamError(f"{self._provider} stream error: {err.get('message')}", kind="http")
                yield data
        raise UpstreamError(f"{self._provider} stream ended before [DONE]", kind="connection")

    async def embed(self, call: EmbeddingCall) -> dict[str, Any]:
        body = self._body(call.body, call.model.upstream_model)
        resp = await self._client.post(
            self._embed_url,
            self._headers(call.api_key, call.model.headers),
            orjson.dumps(body),
            call.timeouts,
        )
        if resp.status >= 400:
            raise self._upstream_error(resp.status, resp.headers, resp.body)
        return _decode(self._provider, resp.body)


def _decode(provider: str, raw: bytes) -> dict[str, Any]:
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise UpstreamError(f"{provider} returned invalid JSON", kind="http") from None
    if not isinstance(data, dict):
        raise UpstreamError(f"{provider} returned an unexpected JSON value", kind="http")
    return data
