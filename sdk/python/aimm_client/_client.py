"""The synchronous client: how it sends. Its API methods come from `_surface.Surface`."""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from types import TracebackType
from typing import TypeVar

import httpx
from websockets.sync.client import ClientConnection, connect

from aimm_client._base import Attempts, ClientCore, StreamState, transport_errors
from aimm_client._feed import FeedState, check_channels, decode
from aimm_client._ops import Call, Op
from aimm_client._surface import Surface, SyncRunner
from aimm_client.types import FeedEvent, StreamChunk

T = TypeVar("T")


class Client(ClientCore[httpx.Client, httpx.BaseTransport], SyncRunner, Surface):
    """Talks to one aimm gateway. Thread-safe; reuse one per process (it pools connections).

    `base_url`, `api_key` and `admin_token` default to AIMM_BASE_URL, AIMM_API_KEY and
    AIMM_ADMIN_TOKEN. Admin calls use the admin token when one is set, else the API key.
    """

    _http_class = httpx.Client

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- transport ---------------------------------------------------------------------------

    def _send(self, call: Call, *, stream: bool = False) -> httpx.Response:
        """One call with the retry rules of `_retry`; returns a successful response or raises."""
        attempts = Attempts(self._settings, call)
        while True:
            try:
                response = self._http.send(attempts.request(self._http), stream=stream)
            except httpx.TransportError as exc:
                time.sleep(attempts.after_failure(exc))
                continue
            if response.status_code < 400:
                return response
            if stream:
                response.read()
                response.close()
            time.sleep(attempts.after_error(response))

    def _run(self, op: Op[T]) -> T:
        return op.parse(self._send(op.call))

    def _open_stream(self, call: Call) -> Stream:
        return Stream(self, call)

    # -- live feed ---------------------------------------------------------------------------

    def subscribe(self, channels: Iterable[str]) -> Feed:
        """The live feed: iterate for FeedEvents of the chosen channels until `close()`."""
        return Feed(self._settings, check_channels(list(channels)))


class Stream(StreamState):
    """An answer being streamed. Iterate it (or use `with`); `close()` cancels it mid-way.

    The request is sent on first use, so errors before the first byte (with retries) raise
    there; an error event mid-stream raises its APIError with `during_stream=True`.
    """

    def __init__(self, client: Client, call: Call) -> None:
        super().__init__(call)
        self._client = client

    def _open(self) -> httpx.Response:
        if self._response is None:
            return self._opened(self._client._send(self._call, stream=True))
        return self._response

    def __iter__(self) -> Iterator[StreamChunk]:
        response = self._open()
        try:
            with transport_errors():
                for line in response.iter_lines():
                    chunk = self._chunk(line)
                    if chunk is not None:
                        yield chunk
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


class Feed(FeedState):
    """A live-feed subscription. Iterate for events; `close()` ends it."""

    _ws: ClientConnection | None = None

    def _open(self) -> ClientConnection:
        if self._ws is None:
            url, options = self._connect_args()
            with self._connecting():
                # Entered, not just called: websockets >= 17.1 warns about a bare connect(), and
                # `__enter__` is the connection itself in every version back to 13.
                self._ws = connect(url, **options).__enter__()
        return self._ws

    def recv(self, timeout: float | None = None) -> FeedEvent:
        """The next event; raises TimeoutError after `timeout` seconds."""
        return decode(self._open().recv(timeout))

    def __iter__(self) -> Iterator[FeedEvent]:
        ws = self._open()
        with self._receiving():
            for message in ws:
                yield decode(message)

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
