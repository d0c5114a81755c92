"""The asyncio client: the same surface as `Client`, with `await` and `async for`."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterable, Mapping
from typing import Any

import httpx
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from aimm_client import _ops
from aimm_client._base import USER_AGENT, Settings, api_error, client_kwargs, decode_event, json_body
from aimm_client._client import _connection_error
from aimm_client._feed import FEED_PATH, check_channels, decode, handshake_error
from aimm_client._ops import Call
from aimm_client._retry import RetryPolicy
from aimm_client.errors import APIConnectionError
from aimm_client.types import (
    JSON,
    BatchResult,
    Feedback,
    FeedEvent,
    FinalChunk,
    LiveMetrics,
    ModelList,
    ModelStatus,
    MultipleResult,
    QueryResult,
    Stats,
    StreamChunk,
)


class AsyncClient:
    """Talks to one aimm gateway from asyncio code; see `Client` for the settings."""

    def __init__(
        self,
        base_url: str | None = None,
        api_key: str | None = None,
        *,
        admin_token: str | None = None,
        timeout: float | httpx.Timeout = 60.0,
        max_retries: int = 2,
        retry_non_idempotent: bool = False,
        limits: httpx.Limits | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        policy = RetryPolicy(max_retries=max_retries, retry_non_idempotent=retry_non_idempotent)
        self._settings = Settings.resolve(base_url, api_key, admin_token, timeout, policy)
        self._http = httpx.AsyncClient(**client_kwargs(self._settings, limits), transport=transport)

    @property
    def base_url(self) -> str:
        return self._settings.base_url

    async def close(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # -- transport ---------------------------------------------------------------------------

    async def _send(self, call: Call, *, stream: bool = False, timeout: float | None = None) -> httpx.Response:
        """One call with the retry rules of `_retry`; returns a successful response or raises."""
        policy = self._settings.retry
        retry = 0
        while True:
            retry += 1
            request = self._settings.build(self._http, call, timeout)
            try:
                response = await self._http.send(request, stream=stream)
            except httpx.TransportError as exc:
                sent = not isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout | httpx.PoolTimeout)
                delay = policy.delay_for_connection(retry, sent, call.safe_to_repeat)
                if delay is None:
                    raise _connection_error(exc) from exc
                await asyncio.sleep(delay)
                continue
            if response.status_code < 400:
                return response
            if stream:
                await response.aread()
                await response.aclose()
            error = api_error(response)
            delay = policy.delay_for_status(retry, response.status_code, call.safe_to_repeat, error.retry_after)
            if delay is None:
                raise error
            await asyncio.sleep(delay)

    async def _json(self, call: Call, timeout: float | None = None) -> JSON:
        return json_body(await self._send(call, timeout=timeout))

    # -- native API --------------------------------------------------------------------------

    async def query(
        self,
        prompt: str,
        *,
        model: str | None = None,
        system: str | None = None,
        max_tokens: int | None = None,
        temperature: float | None = None,
        fallback_model: str | None = None,
        timeout: float | None = None,
    ) -> QueryResult:
        call = _ops.query(
            prompt,
            model=model,
            system=system,
            max_tokens=max_tokens,
            temperature=temperature,
            fallback_model=fallback_model,
        )
        return QueryResult.from_json(await self._json(call, timeout))

    async def query_multiple(
        self,
        prompt: str,
        models: Iterable[str],
        *,
        compare: bool = True,
        system: str | None = None,
        max_tokens: int | None = None,
        temperature: float | None = None,
    ) -> MultipleResult:
        call = _ops.query_multiple(
            prompt, models, compare, system=system, max_tokens=max_tokens, temperature=temperature
        )
        return MultipleResult.from_json(await self._json(call))

    def stream(
        self,
        prompt: str,
        *,
        model: str | None = None,
        system: str | None = None,
        max_tokens: int | None = None,
        temperature: float | None = None,
        fallback_model: str | None = None,
        timeout: float | None = None,
    ) -> AsyncStream:
        """`async for chunk in client.stream(...)`: ContentChunk pieces, then one FinalChunk."""
        call = _ops.stream(
            prompt,
            model=model,
            system=system,
            max_tokens=max_tokens,
            temperature=temperature,
            fallback_model=fallback_model,
        )
        return AsyncStream(self, call, timeout)

    async def batch(self, items: Iterable[str | Mapping[str, Any]], *, model: str | None = None) -> BatchResult:
        return BatchResult.from_json(await self._json(_ops.batch(items, model=model)))

    async def feedback(self, model: str, score: float, *, request_id: str | None = None) -> Feedback:
        return Feedback.from_json(await self._json(_ops.feedback(model, score, request_id)))

    async def models(self) -> ModelList:
        return ModelList.from_json(await self._json(_ops.get("models")))

    async def metrics(self) -> LiveMetrics:
        return LiveMetrics.from_json(await self._json(_ops.get("metrics")))

    async def stats(self) -> Stats:
        return Stats.from_json(await self._json(_ops.get("stats")))

    async def usage(
        self, *, start: str | None = None, end: str | None = None, group_by: str | Iterable[str] | None = None
    ) -> JSON:
        return await self._json(_ops.get("usage", _ops.usage_params(start, end, group_by)))

    async def top_consumers(
        self, *, by: str = "key", limit: int = 10, start: str | None = None, end: str | None = None
    ) -> JSON:
        """The biggest spenders between `start` and `end`, by key, team, model, ..."""
        params = {"by": by, "limit": str(limit), "from": start, "to": end}
        return await self._json(_ops.get("top_consumers", params))

    async def report(self, *, period: str | None = None) -> bytes:
        """The PDF report of a period (`YYYY-MM`, default this month)."""
        return (await self._send(_ops.get("report", {"period": period}))).content

    async def budgets(self) -> JSON:
        return await self._json(_ops.get("budgets"))

    async def health(self) -> JSON:
        return await self._json(_ops.get("health"))

    async def ready(self) -> JSON:
        return await self._json(_ops.get("ready"))

    # -- admin -------------------------------------------------------------------------------

    async def add_model(self, config: Mapping[str, Any]) -> ModelStatus:
        return ModelStatus.from_json(await self._json(_ops.add_model(config)))

    async def update_model(self, name: str, **changes: Any) -> ModelStatus:
        return ModelStatus.from_json(await self._json(_ops.update_model(name, changes)))

    async def enable_model(self, name: str) -> ModelStatus:
        return ModelStatus.from_json(await self._json(_ops.update_model(name, {"enabled": True}, "enable_model")))

    async def disable_model(self, name: str) -> ModelStatus:
        return ModelStatus.from_json(await self._json(_ops.update_model(name, {"enabled": False}, "disable_model")))

    async def models_status(self) -> list[ModelStatus]:
        doc = await self._json(_ops.get("models_status", admin=True))
        return [ModelStatus.from_json(m) for m in doc["models"]]

    async def create_key(self, name: str, *, role: str = "user", **options: Any) -> JSON:
        return await self._json(_ops.create_key({"name": name, "role": role, **options}))

    async def list_keys(self) -> JSON:
        return await self._json(_ops.get("list_keys", admin=True))

    async def revoke_key(self, key_id: str) -> None:
        await self._send(_ops.revoke_key(key_id))

    async def rotate_key(self, key_id: str, **options: Any) -> JSON:
        return await self._json(_ops.rotate_key(key_id, options))

    # -- live feed ---------------------------------------------------------------------------

    def subscribe(self, channels: Iterable[str]) -> AsyncFeed:
        """`async with client.subscribe(["metrics"]) as feed: async for event in feed: ...`"""
        return AsyncFeed(self._settings, check_channels(list(channels)))


class AsyncStream:
    """An answer being streamed; `async for` it, `aclose()` (or task cancellation) stops it."""

    def __init__(self, client: AsyncClient, call: Call, timeout: float | None) -> None:
        self._client, self._call, self._timeout = client, call, timeout
        self._response: httpx.Response | None = None
        self.text = ""
        self.final: FinalChunk | None = None

    @property
    def request_id(self) -> str | None:
        if self._response is None:
            return None
        rid: str | None = self._response.headers.get("x-request-id") or self._response.request.headers.get(
            "x-request-id"
        )
        return rid

    async def _open(self) -> httpx.Response:
        if self._response is None:
            self._response = await self._client._send(self._call, stream=True, timeout=self._timeout)
        return self._response

    async def __aiter__(self) -> AsyncIterator[StreamChunk]:
        response = await self._open()
        rid = self.request_id
        try:
            async for line in response.aiter_lines():
                chunk = decode_event(line, rid)
                if chunk is None:
                    continue
                if chunk.type == "content":
                    self.text += chunk.text
                else:
                    self.final = chunk
                yield chunk
        except httpx.TransportError as exc:
            raise _connection_error(exc) from exc
        finally:
            await response.aclose()

    async def aclose(self) -> None:
        if self._response is not None:
            await self._response.aclose()

    async def __aenter__(self) -> AsyncStream:
        await self._open()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()


class AsyncFeed:
    """A live-feed subscription for asyncio code."""

    def __init__(self, settings: Settings, channels: list[str]) -> None:
        self._settings, self.channels = settings, channels
        self._ws: ClientConnection | None = None

    async def _open(self) -> ClientConnection:
        if self._ws is None:
            s = self._settings
            headers = {"authorization": f"Bearer {s.api_key}"} if s.api_key else None
            try:
                self._ws = await connect(
                    s.ws_url(FEED_PATH, self.channels),
                    additional_headers=headers,
                    open_timeout=s.timeout.connect,
                    user_agent_header=USER_AGENT,
                )
            except InvalidStatus as exc:
                raise handshake_error(exc) from None
            except OSError as exc:
                raise APIConnectionError(f"cannot reach {s.base_url}: {exc}") from exc
        return self._ws

    async def recv(self) -> FeedEvent:
        return decode(await (await self._open()).recv())

    async def __aiter__(self) -> AsyncIterator[FeedEvent]:
        ws = await self._open()
        try:
            async for message in ws:
                yield decode(message)
        except ConnectionClosed as exc:
            raise APIConnectionError(f"live feed closed: {exc}") from exc

    async def aclose(self) -> None:
        if self._ws is not None:
            await self._ws.close()

    async def __aenter__(self) -> AsyncFeed:
        await self._open()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()
