"""`GET /api/v1/ws`: the live feed over WebSocket (viewer role and up).

Credentials: `Authorization: Bearer <key>` (or `x-api-key`), or, for browsers that cannot set
headers, the subprotocols `["aimm.v1", "bearer.<key>"]` (the server answers `aimm.v1`).
Channels: `?channels=metrics,models` on connect, then `{"type": "subscribe" | "unsubscribe",
"channels": [...]}` messages. Every server message is one JSON object with a `channel` (or
`"channel": "control"` for replies). A subscriber that falls `live.subscriber_queue` messages
behind is closed with 1013 and a reason; nothing the gateway does ever waits for it.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from typing import Any

import orjson
from starlette.requests import HTTPConnection
from starlette.routing import WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from aimm_gateway.api.access import ACCESS
from aimm_gateway.api.common import bearer, error_response, gateway_of, peer
from aimm_gateway.errors import Forbidden, GatewayError, InvalidRequest
from aimm_gateway.live.hub import CHANNELS, STOP, LiveHub, Subscriber, encode
from aimm_gateway.security.client_ip import client_ip
from aimm_gateway.security.identity import ANONYMOUS, Identity
from aimm_gateway.security.request_ids import valid_request_id
from aimm_gateway.service import Gateway

SUBPROTOCOL = "aimm.v1"
_TOKEN_PREFIX = "bearer."
_MAX_COMMAND = 4096  # bytes; commands are tiny
CLIENT_CLOSED = 1000
PERMISSION = ACCESS[("/api/v1/ws", "GET")]  # READ: viewer and up


def credentials(ws: WebSocket) -> str | None:
    """The key from the headers, else from a `bearer.<key>` subprotocol (browsers)."""
    key = bearer(ws)
    if key:
        return key
    for offered in ws.scope.get("subprotocols") or ():
        if offered.startswith(_TOKEN_PREFIX):
            return offered[len(_TOKEN_PREFIX) :]
    return None


async def caller_of(conn: HTTPConnection, gateway: Gateway, key: str | None) -> Identity:
    """Resolve `key` like the access wrapper does (failed attempts audited and throttled per IP);
    ANONYMOUS with auth off. For routes that check their own permission."""
    rt = gateway.runtime
    if not rt.config.auth.enabled:
        return ANONYMOUS
    ip = client_ip(peer(conn), conn.headers.get("x-forwarded-for"), tuple(rt.config.limits.trusted_proxies))
    rid = valid_request_id(conn.headers.get("x-request-id"))
    identity: Identity = await gateway.auth.identify(rt, key, ip, rid)
    return identity


async def identify(ws: WebSocket, gateway: Gateway) -> Identity:
    """The caller, allowed to read; raises 401 (no or bad key) or 403 (a role below viewer)."""
    identity = await caller_of(ws, gateway, credentials(ws))
    if not identity.can(PERMISSION):
        raise Forbidden(f"role {identity.role.value!r} may not read the live feed (viewer role or above needed)")
    return identity


def requested_channels(ws: WebSocket) -> list[str]:
    raw = ws.query_params.get("channels", "")
    wanted = [c.strip() for c in raw.split(",") if c.strip()]
    unknown = [c for c in wanted if c not in CHANNELS]
    if unknown:
        raise InvalidRequest(f"unknown channel(s) {', '.join(unknown)}; choose from {', '.join(CHANNELS)}")
    return wanted


async def live_ws(ws: WebSocket) -> None:
    gateway = gateway_of(ws)
    hub = gateway.live
    try:
        identity = await identify(ws, gateway)
        channels = requested_channels(ws)
        if hub.full():
            raise GatewayError(
                f"live feed is full ({hub.max_subscribers} subscribers); try again later",
                status=503,
                type="server_error",
                code="live_feed_full",
            )
    except GatewayError as exc:
        await ws.send_denial_response(error_response(exc))
        return
    offered = ws.scope.get("subprotocols") or ()
    await ws.accept(subprotocol=SUBPROTOCOL if SUBPROTOCOL in offered else None)
    sub = hub.join(channels, identity.name)
    sub.offer(_hello(identity, sub, hub.pod))
    gateway.feed.welcome(sub, sub.channels)
    reader = asyncio.get_running_loop().create_task(_read_commands(ws, hub, sub, gateway))
    try:
        await _write(ws, sub)
    finally:
        reader.cancel()
        hub.leave(sub)


def _hello(identity: Identity, sub: Subscriber, pod: str) -> str:
    return encode(
        "control",
        {
            "type": "hello",
            "identity": {"name": identity.name, "role": identity.role.value},
            "channels": sorted(sub.channels),
            "available": list(CHANNELS),
            # The process's name in fleet events (relay on), else the host: see docs/console.md.
            "pod": pod or socket.gethostname(),
        },
    )


async def _write(ws: WebSocket, sub: Subscriber) -> None:
    """Drain the subscriber's queue onto the socket until STOP; close with the stop's code."""
    queue = sub.queue
    try:
        while (message := await queue.get()) != STOP:
            await ws.send_text(message)
    except (WebSocketDisconnect, RuntimeError, OSError):
        return  # the peer is gone (uvicorn raises ClientDisconnected, an OSError)
    if sub.close_code != CLIENT_CLOSED:  # dropped or shutting down: say why
        with contextlib.suppress(Exception):
            await ws.close(sub.close_code, (sub.dropped or "")[:120])


async def _read_commands(ws: WebSocket, hub: LiveHub, sub: Subscriber, gateway: Gateway) -> None:
    try:
        while True:
            text = await ws.receive_text()
            before = set(sub.channels)
            sub.offer(_command(text, hub, sub))
            if sub.channels - before:  # the current picture for channels just joined
                gateway.feed.welcome(sub, sub.channels - before)
    except (WebSocketDisconnect, RuntimeError, KeyError):
        sub.stop("client closed", CLIENT_CLOSED)
        hub.leave(sub)


def _command(text: str, hub: LiveHub, sub: Subscriber) -> str:
    """Apply one client message; returns the reply to queue."""
    try:
        if len(text) > _MAX_COMMAND:
            raise ValueError(f"message over {_MAX_COMMAND} bytes")
        doc: Any = orjson.loads(text)
        kind = doc.get("type") if isinstance(doc, dict) else None
        if kind == "ping":
            return encode("control", {"type": "pong"})
        if kind not in ("subscribe", "unsubscribe"):
            raise ValueError("expected {'type': 'subscribe' | 'unsubscribe' | 'ping', 'channels': [...]}")
        channels = doc.get("channels")
        if not isinstance(channels, list) or not all(isinstance(c, str) for c in channels):
            raise ValueError("'channels' must be a list of channel names")
        wanted = sub.channels | set(channels) if kind == "subscribe" else sub.channels - set(channels)
        hub.set_channels(sub, wanted)
    except (ValueError, orjson.JSONDecodeError) as exc:
        return encode("control", {"type": "error", "message": str(exc)})
    return encode("control", {"type": "subscribed", "channels": sorted(sub.channels)})


live_ws.required_permission = PERMISSION  # type: ignore[attr-defined]
routes = [WebSocketRoute("/api/v1/ws", live_ws)]
