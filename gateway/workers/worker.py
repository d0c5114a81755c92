"""One worker process of a supervised gateway: its own Gateway, event loop and uvicorn server.

Everything stateful (config snapshot, router and breakers, upstream pools, metrics registry,
random generator) is built here, after the fork, so workers share nothing but the listening
socket: a breaker opened in one worker is that worker's, and no two workers draw the same
"random" weighted picks from a generator state copied by fork.
"""

from __future__ import annotations

import asyncio
import ctypes
import logging
import os
import signal
import socket
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

import uvicorn
from prometheus_client import CONTENT_TYPE_LATEST
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from aimm_gateway.api.access import protect
from aimm_gateway.workers.metrics_merge import merge_metrics
from aimm_gateway.workers.peers import LocalView, Peers
from aimm_gateway.workers.stats_merge import merge_stats

log = logging.getLogger("aimm.gateway.workers")

PR_SET_PDEATHSIG = 1  # linux/prctl.h

# Pod-wide views a scrape or the operator's poll expects: (merge of the workers' bodies, media type).
MERGED: dict[str, tuple[Callable[[dict[int, bytes], dict[int, int]], bytes], str]] = {
    "/metrics": (merge_metrics, CONTENT_TYPE_LATEST),
    "/api/v1/stats": (merge_stats, "application/json"),
}


@dataclass(frozen=True)
class WorkerSpec:
    config: str
    count: int
    grace_s: float
    run_dir: Path  # the supervisor's private directory: the workers' metrics sockets


def run_worker(spec: WorkerSpec, index: int, sock: socket.socket, supervisor: int) -> NoReturn:
    """The forked child's whole life; never returns into the supervisor's code."""
    signal.pthread_sigmask(signal.SIG_SETMASK, [])  # the supervisor blocks the signals it waits for
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGCHLD):
        signal.signal(sig, signal.SIG_DFL)
    # Until its handler is installed, a SIGHUP must not kill a starting worker: it reads the file anyway.
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    die_with(supervisor)
    code = 1
    try:
        code = _run(spec, index, sock)
    except Exception:
        log.exception("worker %d failed", index)
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
    os._exit(code)


def die_with(supervisor: int) -> None:
    """A worker drains and exits when its supervisor dies, however it died (SIGKILL, OOM kill).

    In a pod the container's end takes every process with it; on a host (systemd, a test, a
    developer's shell) an orphaned worker would keep serving an old config on the shared port.
    """
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0) != 0:
        log.warning("workers will outlive a killed supervisor: prctl failed (errno %d)", ctypes.get_errno())
    elif os.getppid() != supervisor:  # it died before the prctl took effect
        os.kill(os.getpid(), signal.SIGTERM)


def _run(spec: WorkerSpec, index: int, sock: socket.socket) -> int:
    import uvloop

    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(_serve(spec, index, sock))


async def _serve(spec: WorkerSpec, index: int, sock: socket.socket) -> int:
    from aimm_gateway.app import create_app
    from aimm_gateway.serve import freeze_startup_objects, reload_on_sighup, uvicorn_config
    from aimm_gateway.service import Gateway

    gateway = Gateway.from_file(spec.config)
    app = create_app(gateway)
    own = {path: _route(app, path) for path in MERGED}
    peers = Peers(spec.run_dir, index, spec.count, _local_views(app, own), frozenset(MERGED))
    for path in MERGED:
        _serve_merged(app, peers, path)
    freeze_startup_objects()
    reload_on_sighup(gateway)
    await peers.start()
    config = uvicorn_config(app, gateway, spec.grace_s)
    log.info("worker %d serving (pid %d)", index, os.getpid())
    try:
        await uvicorn.Server(config).serve(sockets=[sock])
    finally:
        await peers.stop()
    return 0


def _route(app: Starlette, path: str) -> tuple[int, Route]:
    for i, route in enumerate(app.router.routes):
        if isinstance(route, Route) and route.path == path:
            return i, route
    raise LookupError(f"the app has no {path} route")


def _local_views(app: Starlette, own: dict[str, tuple[int, Route]]) -> LocalView:
    """This worker's own body for a view, rendered by the app's own handler (one way to render it)."""

    async def local(path: str) -> bytes:
        scope = {"type": "http", "app": app, "method": "GET", "path": path, "headers": [], "query_string": b""}
        endpoint = own[path][1].endpoint
        # The handler itself, not its permission check: the merged route already checked the caller.
        inner = getattr(endpoint, "unguarded", endpoint)
        response: Response = await inner(Request(scope))
        return bytes(response.body)

    return local


def _serve_merged(app: Starlette, peers: Peers, path: str) -> None:
    """Swap the app's route for the merged view; other routes are untouched (no middleware)."""
    merge, media_type = MERGED[path]

    async def merged(request: Request) -> Response:
        return Response(merge(*await peers.gather(path)), media_type=media_type)

    i, route = _route(app, path)
    # Through `protect` again: the merged view needs the same permission as the route it replaces.
    app.router.routes[i] = protect([Route(route.path, merged, methods=sorted(route.methods or {"GET"}))])[0]
