"""The synchronous client."""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator, Mapping
from types import TracebackType
from typing import Any

import httpx
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import ClientConnection, connect

from aimm_client import _ops
from aimm_client._base import USER_AGENT, Settings, api_error, client_kwargs, decode_event, json_body
from aimm_client._feed import FEED_PATH, check_channels, decode, handshake_error
from aimm_client._ops import Call
from aimm_client._retry import RetryPolicy
from aimm_client.errors import APIConnectionError, APITimeoutError
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


class Client:
    """Talks to one aimm gateway. Thread-safe; reuse one per process (it pools connections).

    `base_url`, `api_key` and `admin_token` default to AIMM_BASE_URL, AIMM_API_KEY and
    AIMM_ADMIN_TOKEN. Admin calls use the admin token when one is set, else the API key.
    """

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
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        policy = RetryPolicy(max_retries=max_retries, retry_non_idempotent=retry_non_idempotent)
        self._settings = Settings.resolve(base_url, api_key, admin_token, timeout, policy)
        self._http = httpx.Client(**client_kwargs(self._settings, limits), transport=transport)

    @property
    def base_url(self) -> str:
        return self._settings.base_url

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- transport ---------------------------------------------------------------------------

    def _send(self, call: Call, *, stream: bool = False, timeout: float | None = None) -> httpx.Response:
        """One call with the retry rules of `_retry`; returns a successful response or raises."""
        policy = self._settings.retry
        retry = 0
        while True:
            retry += 1
            request = self._settings.build(self._http, call, timeout)
            try:
                response = self._http.send(request, stream=stream)
            except httpx.TransportError as exc:
                sent = not isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout | httpx.PoolTimeout)
                delay = policy.delay_for_connection(retry, sent, call.safe_to_repeat)
                if delay is None:
                    raise _connection_error(exc) from exc
                time.sleep(delay)
                continue
            if response.status_code < 400:
                return response
            if stream:
                response.read()
                response.close()
            error = api_error(response)
            delay = policy.delay_for_status(retry, response.status_code, call.safe_to_repeat, error.retry_after)
            if delay is None:
                raise error
            time.sleep(delay)

    def _json(self, call: Call, timeout: float | None = None) -> JSON:
        return json_body(self._send(call, timeout=timeout))

    # -- native API --------------------------------------------------------------------------

    def query(
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
        """One prompt to a model or route (the gateway's default when `model` is None)."""
        call = _ops.query(
            prompt,
            model=model,
            system=system,
            max_tokens=max_tokens,
            temperature=temperature,
            fallback_model=fallback_model,
        )
        return QueryResult.from_json(self._json(call, timeout))

    def query_multiple(
        self,
        prompt: str,
        models: Iterable[str],
        *,
        compare: bool = True,
        system: str | None = None,
        max_tokens: int | None = None,
        temperature: float | None = None,
    ) -> MultipleResult:
        """One prompt to several models at once; `compare` adds the agreement/fastest/cheapest summary."""
        call = _ops.query_multiple(
            prompt, models, compare, system=system, max_tokens=max_tokens, temperature=temperature
        )
        return MultipleResult.from_json(self._json(call))

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
    ) -> Stream:
        """The answer as it is generated: iterate for ContentChunk pieces, then one FinalChunk."""
        call = _ops.stream(
            prompt,
            model=model,
            system=system,
            max_tokens=max_tokens,
            temperature=temperature,
            fallback_model=fallback_model,
        )
        return Stream(self, call, timeout)

    def batch(self, items: Iterable[str | Mapping[str, Any]], *, model: str | None = None) -> BatchResult:
        """Many prompts in one call; results keep the order of `items` (failures included)."""
        return BatchResult.from_json(self._json(_ops.batch(items, model=model)))

    def feedback(self, model: str, score: float, *, request_id: str | None = None) -> Feedback:
        return Feedback.from_json(self._json(_ops.feedback(model, score, request_id)))

    def models(self) -> ModelList:
        return ModelList.from_json(self._json(_ops.get("models")))

    def metrics(self) -> LiveMetrics:
        return LiveMetrics.from_json(self._json(_ops.get("metrics")))

    def stats(self) -> Stats:
        return Stats.from_json(self._json(_ops.get("stats")))

    def usage(
        self, *, start: str | None = None, end: str | None = None, group_by: str | Iterable[str] | None = None
    ) -> JSON:
        """Usage analytics between `start` and `end` (ISO 8601), grouped by model, day, ..."""
        return self._json(_ops.get("usage", _ops.usage_params(start, end, group_by)))

    def top_consumers(
        self, *, by: str = "key", limit: int = 10, start: str | None = None, end: str | None = None
    ) -> JSON:
        """The biggest spenders between `start` and `end`, by key, team, model, ..."""
        params = {"by": by, "limit": str(limit), "from": start, "to": end}
        return self._json(_ops.get("top_consumers", params))

    def report(self, *, period: str | None = None) -> bytes:
        """The PDF report of a period (`YYYY-MM`, default this month)."""
        return (self._send(_ops.get("report", {"period": period}))).content

    def budgets(self) -> JSON:
        return self._json(_ops.get("budgets"))

    def health(self) -> JSON:
        return self._json(_ops.get("health"))

    def ready(self) -> JSON:
        return self._json(_ops.get("ready"))

    # -- admin -------------------------------------------------------------------------------

    def add_model(self, config: Mapping[str, Any]) -> ModelStatus:
        """Add a model at runtime (the same fields as a `models:` entry of the gateway config)."""
        return ModelStatus.from_json(self._json(_ops.add_model(config)))

    def update_model(self, name: str, **changes: Any) -> ModelStatus:
        return ModelStatus.from_json(self._json(_ops.update_model(name, changes)))

    def enable_model(self, name: str) -> ModelStatus:
        return ModelStatus.from_json(self._json(_ops.update_model(name, {"enabled": True}, "enable_model")))

    def disable_model(self, name: str) -> ModelStatus:
        return ModelStatus.from_json(self._json(_ops.update_model(name, {"enabled": False}, "disable_model")))

    def models_status(self) -> list[ModelStatus]:
        return [ModelStatus.from_json(m) for m in self._json(_ops.get("models_status", admin=True))["models"]]

    def create_key(self, name: str, *, role: str = "user", **options: Any) -> JSON:
        """A new API key; its secret is in the answer once and never again."""
        return self._json(_ops.create_key({"name": name, "role": role, **options}))

    def list_keys(self) -> JSON:
        return self._json(_ops.get("list_keys", admin=True))

    def revoke_key(self, key_id: str) -> None:
        self._send(_ops.revoke_key(key_id))

    def rotate_key(self, key_id: str, **options: Any) -> JSON:
        return self._json(_ops.rotate_key(key_id, options))

    # -- live feed ---------------------------------------------------------------------------

    def subscribe(self, channels: Iterable[str]) -> Feed:
        """The live feed: iterate for FeedEvents of the chosen channels until `close()`."""
        return Feed(self._settings, check_channels(list(channels)))


class Stream:
    """An answer being streamed. Iterate it (or use `with`); `close()` cancels it mid-way.

    The request is sent on first use, so errors before the first byte (with retries) raise
    there; an error event mid-stream raises its APIError with `during_stream=True`.
    """

    def __init__(self, client: Client, call: Call, timeout: float | None) -> None:
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

    def _open(self) -> httpx.Response:
        if self._response is None:
            self._response = self._client._send(self._call, stream=True, timeout=self._timeout)
        return self._response

    def __iter__(self) -> Iterator[StreamChunk]:
        response = self._open()
        rid = self.request_id
        try:
            for line in response.iter_lines():
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
            response.close()

    def close(self) -> None:
        if self._response is not None:
            self._response.close()

    def __enter__(self) -> Stream:
        self._open()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Feed:
    """A live-feed subscription. Iterate for events; `close()` ends it."""

    def __init__(self, settings: Settings, channels: list[str]) -> None:
        self._settings, self.channels = settings, channels
        self._ws: ClientConnection | None = None

    def _open(self) -> ClientConnection:
        if self._ws is None:
            s = self._settings
            headers = {"authorization": f"Bearer {s.api_key}"} if s.api_key else None
            try:
                self._ws = connect(
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

    def recv(self, timeout: float | None = None) -> FeedEvent:
        """The next event; raises TimeoutError after `timeout` seconds."""
        return decode(self._open().recv(timeout))

    def __iter__(self) -> Iterator[FeedEvent]:
        ws = self._open()
        try:
            for message in ws:
                yield decode(message)
        except ConnectionClosed as exc:
            raise APIConnectionError(f"live feed closed: {exc}") from exc

    def close(self) -> None:
        if self._ws is not None:
            self._ws.close()

    def __enter__(self) -> Feed:
        self._open()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


def _connection_error(exc: httpx.TransportError) -> APIConnectionError:
    if isinstance(exc, httpx.TimeoutException):
        return APITimeoutError(f"timed out: {exc}")
    return APIConnectionError(f"connection failed: {exc}")
