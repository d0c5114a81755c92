"""`aimm bench --iface`: what the server interface alone costs per request (ASGI vs granian's RSGI).

Each server answers a POST with one fixed JSON body and no gateway behind it, pinned to the
gateway's CPU, in interleaved rounds; the figure is the serving process's CPU per request. It
bounds what porting the gateway to RSGI could save (docs/benchmarks.md: nothing measurable).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from functools import partial
from typing import Any

import orjson

from aimm_gateway.bench import cpu
from aimm_gateway.bench.loadgen import wrk
from aimm_gateway.bench.procs import GATEWAY_CPU, children, free_port, pinned, process

ANSWER = orjson.dumps({"id": "x", "object": "chat.completion", "choices": [{"index": 0, "message": {"content": "hi"}}]})
_HEADERS = [(b"content-type", b"application/json")]


async def lifespan(receive: Any, send: Any) -> None:
    """A bench app's whole lifespan: started at once, shut down when asked."""
    while (await receive())["type"] != "lifespan.shutdown":
        await send({"type": "lifespan.startup.complete"})
    await send({"type": "lifespan.shutdown.complete"})


async def asgi_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        await lifespan(receive, send)
        return
    while (await receive()).get("more_body"):
        pass
    await send({"type": "http.response.start", "status": 200, "headers": _HEADERS})
    await send({"type": "http.response.body", "body": ANSWER})


class RSGIApp:
    """The same answer through granian's RSGI: the body in one await, the response in one call."""

    def __rsgi_init__(self, loop: Any) -> None:
        pass

    async def __rsgi__(self, scope: Any, protocol: Any) -> None:
        await protocol()
        protocol.response_bytes(200, [("content-type", "application/json")], ANSWER)


rsgi_app = RSGIApp()
SERVERS = {
    "uvicorn ASGI": "import uvicorn; uvicorn.run('aimm_gateway.bench.iface:asgi_app', port={port}, loop='uvloop', "
    "http='httptools', log_level='warning', access_log=False, proxy_headers=False)",
    "granian ASGI": "from granian import Granian; from granian.constants import Interfaces; Granian("
    "'aimm_gateway.bench.iface:asgi_app', address='127.0.0.1', port={port}, interface=Interfaces.ASGI).serve()",
    "granian RSGI": "from granian import Granian; from granian.constants import Interfaces; Granian("
    "'aimm_gateway.bench.iface:rsgi_app', address='127.0.0.1', port={port}, interface=Interfaces.RSGI).serve()",
}


def _serving_pid(pid: int) -> int:
    """granian answers from a worker process under its supervisor; uvicorn from itself."""
    time.sleep(0.5)
    workers = children(pid)
    return workers[0] if workers else pid


@contextmanager
def _servers(stack: ExitStack) -> Iterator[dict[str, tuple[int, str]]]:
    out = {}
    for name, code in SERVERS.items():
        port = free_port()
        args = pinned(GATEWAY_CPU, [sys.executable, "-P", "-c", code.format(port=port)])
        proc = stack.enter_context(process(args, f"http://127.0.0.1:{port}/"))
        out[name] = (_serving_pid(proc.pid), f"http://127.0.0.1:{port}/")
    yield out


def compare(duration: float = 4.0, rounds: int = 3) -> dict[str, cpu.CpuPerRequest]:
    with ExitStack() as stack, _servers(stack) as servers:
        loads: dict[str, tuple[int, Any]] = {}
        for name, (pid, url) in servers.items():
            run: Any = partial(wrk, url, b'{"model":"m"}', {"content-type": "application/json"}, 16, duration)
            run()  # warm-up
            loads[name] = (pid, run)
        return cpu.interleaved(loads, rounds)


def report(results: dict[str, cpu.CpuPerRequest]) -> str:
    lines = [
        "## Server interface alone (`aimm bench --iface`)",
        "",
        "| server | CPU per request | RPS |",
        "|---|---|---|",
    ]
    lines += [f"| {name} | {r.us:.1f} µs | {r.rps:,.0f} |" for name, r in results.items()]
    return "\n".join(lines) + "\n"
