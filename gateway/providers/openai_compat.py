"""The OpenAI chat-completions wire format: OpenAI and every OpenAI-compatible provider.

The canonical model *is* this format, so requests pass through with only `model` rewritten and
unknown fields kept; streams are asked for usage so cost can always be settled.

Close variants (Azure OpenAI) reuse this adapter: `query` is appended to every URL, `send_model`
says whether the body names the model, and `_on_error` can recognise provider error codes.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable
from functools import partial
from typing import Any, ClassVar

import orjson

from aimm_gateway.canonical import ChatChunk, ChatCompletion
from aimm_gateway.errors import UpstreamError
from aimm_gateway.presets import AuthStyle
from aimm_gateway.providers.base import EmbeddingCall, UpstreamCall
from aimm_gateway.providers.errors import upstream_error
from aimm_gateway.providers.exchange import DONE, Upstream
from aimm_gateway.providers.http import UpstreamPools
from aimm_gateway.providers.raw_sse import RawEvents


class OpenAICompatProvider:
    # The stream is the client's wire format as is: a pass-through relay may forward its bytes
    # (`stream_raw`). A variant whose chunks need filtering (Azure) turns this off.
    raw_stream: ClassVar[bool] = True

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
        suffix = f"?{query}" if query else ""
        self._chat_url = f"{base_url}/chat/completions{suffix}"
        self._embed_url = f"{base_url}/embeddings{suffix}"
        self._auth = auth
        self._send_model = send_model
        self._upstream = Upstream(pools.for_url(base_url), provider, self._on_error)

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

    def _on_error(self, provider: str, status: int, headers: dict[str, str], body: bytes) -> UpstreamError:
        return upstream_error(provider, status, headers, body)

    async def complete(self, call: UpstreamCall) -> ChatCompletion:
        body = self._body(call.body, call.model.upstream_model)
        body.pop("stream", None)
        body.pop("stream_options", None)
        return await self._post(self._chat_url, body, call)

    def _stream_request(self, call: UpstreamCall) -> tuple[dict[str, str], bytes]:
        body = {**self._body(call.body, call.model.upstream_model), "stream": True}
        body["stream_options"] = {**(body.get("stream_options") or {}), "include_usage": True}
        headers = {**self._headers(call.api_key, call.headers), "accept": "text/event-stream"}
        return headers, orjson.dumps(body)

    def stream_raw(self, call: UpstreamCall) -> RawEvents:
        """The same stream as `stream`, as raw event payloads (not yet sent: `open` it)."""
        headers, body = self._stream_request(call)
        upstream = self._upstream
        return RawEvents(partial(upstream.open, self._chat_url, headers, body, call.timeouts), upstream.provider)

    async def stream(self, call: UpstreamCall) -> AsyncIterator[ChatChunk]:
        headers, body = self._stream_request(call)
        upstream = self._upstream
        async with upstream.stream(self._chat_url, headers, body, call.timeouts) as resp:
            # The chunks are already OpenAI's: no translation, and the usage chunk comes from upstream.
            async for event, data in upstream.sse(resp):
                if event == DONE:
                    return
                if "error" in data and "choices" not in data:
                    err = data["error"] if isinstance(data["error"], dict) else {"message": str(data["error"])}
                    raise UpstreamError(f"{upstream.provider} stream error: {err.get('message')}", kind="http")
                yield data
        raise UpstreamError(f"{upstream.provider} stream ended before [DONE]", kind="connection")

    async def embed(self, call: EmbeddingCall) -> dict[str, Any]:
        return await self._post(self._embed_url, self._body(call.body, call.model.upstream_model), call)

    def _post(self, url: str, body: dict[str, Any], call: UpstreamCall | EmbeddingCall) -> Awaitable[dict[str, Any]]:
        """The exchange's awaitable itself, not a coroutine around it: one frame less per request."""
        headers = self._headers(call.api_key, call.headers)
        return self._upstream.post_json(url, headers, orjson.dumps(body), call.timeouts)
