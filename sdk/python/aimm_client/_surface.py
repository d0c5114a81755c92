"""The client methods, declared once for both clients.

`Surface` lists every method that is one request (or one stream) and names the `_ops` function
that builds it; that function's signature and docstring are the method's. `Client` and
`AsyncClient` inherit the table and supply only how a request is sent (`_run`, `_open_stream`):
on a `Client`, `client.query(...)` returns the result; on an `AsyncClient` it is a coroutine
function (`await client.query(...)`). Bound methods are made on first use and kept on the
instance, so a call costs what a plain method call does.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any, Generic, ParamSpec, TypeVar, overload

from aimm_client import _ops
from aimm_client._ops import Call, Op

if TYPE_CHECKING:
    from aimm_client._async_client import AsyncStream
    from aimm_client._client import Stream

P = ParamSpec("P")
T = TypeVar("T")
S = TypeVar("S")  # what the sync client's method returns
A = TypeVar("A")  # what the async client's method returns


class SyncRunner:
    """Marks a client whose methods return their results (for the types of `Operation`)."""

    _asynchronous = False


class AsyncRunner:
    """Marks a client whose methods are coroutine functions."""

    _asynchronous = True


class Operation(Generic[P, S, A]):
    """A descriptor: the method `name` of both clients, built from one `_ops` function."""

    def __init__(self, build: Callable[P, Any], *, streams: bool = False) -> None:
        self.build, self.streams = build, streams
        self.name = build.__name__
        self.__doc__ = build.__doc__
        signature = inspect.signature(build)  # follows __wrapped__ (the stream's is the query's)
        # What the method returns, for help() and inspect: a stream object, or what `Op[...]` parses.
        answer = str(signature.return_annotation).removeprefix("Op[")[:-1]
        self._signatures = {
            asynchronous: signature.replace(return_annotation=kind if streams else answer)
            for asynchronous, kind in ((False, "Stream"), (True, "AsyncStream"))
        }

    def __set_name__(self, owner: type[Any], name: str) -> None:
        self.name = name

    @overload
    def __get__(self, obj: None, owner: type[Any]) -> Operation[P, S, A]: ...
    @overload
    def __get__(self, obj: SyncRunner, owner: type[Any]) -> Callable[P, S]: ...
    @overload
    def __get__(self, obj: AsyncRunner, owner: type[Any]) -> Callable[P, A]: ...
    def __get__(self, obj: Any, owner: type[Any]) -> Any:
        if obj is None:
            return self
        method = self._bind(obj)
        obj.__dict__[self.name] = method  # later lookups find it before the descriptor
        return method

    def __call__(self, client: Any, *args: Any, **kwargs: Any) -> Any:
        """`Client.query(client, ...)`, as with a plain method."""
        return getattr(client, self.name)(*args, **kwargs)

    def _bind(self, client: Any) -> Any:
        build = self.build
        send = client._open_stream if self.streams else client._run
        method: Any
        if client._asynchronous and not self.streams:

            async def method(*args: Any, **kwargs: Any) -> Any:
                return await send(build(*args, **kwargs))

        else:

            def method(*args: Any, **kwargs: Any) -> Any:
                return send(build(*args, **kwargs))

        method.__name__ = self.name
        method.__qualname__ = f"{type(client).__name__}.{self.name}"
        method.__doc__ = self.__doc__
        method.__signature__ = self._signatures[client._asynchronous]
        return method


def operation(build: Callable[P, Op[T]]) -> Operation[P, T, Coroutine[Any, Any, T]]:
    return Operation(build)


def streamed(build: Callable[P, Call]) -> Operation[P, Stream, AsyncStream]:
    return Operation(build, streams=True)


class Surface:
    """The table: one line a method, for `Client` and `AsyncClient` alike."""

    query = operation(_ops.query)
    query_multiple = operation(_ops.query_multiple)
    stream = streamed(_ops.stream)
    batch = operation(_ops.batch)
    feedback = operation(_ops.feedback)
    models = operation(_ops.models)
    metrics = operation(_ops.metrics)
    stats = operation(_ops.stats)
    usage = operation(_ops.usage)
    top_consumers = operation(_ops.top_consumers)
    report = operation(_ops.report)
    budgets = operation(_ops.budgets)
    health = operation(_ops.health)
    ready = operation(_ops.ready)
    # admin
    add_model = operation(_ops.add_model)
    update_model = operation(_ops.update_model)
    enable_model = operation(_ops.enable_model)
    disable_model = operation(_ops.disable_model)
    set_model_weight = operation(_ops.set_model_weight)
    models_status = operation(_ops.models_status)
    create_key = operation(_ops.create_key)
    list_keys = operation(_ops.list_keys)
    revoke_key = operation(_ops.revoke_key)
    rotate_key = operation(_ops.rotate_key)
    audit = operation(_ops.audit)
