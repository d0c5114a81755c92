"""The operator's plumbing: request coalescing, the API client's retries, server-side apply."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import kopf
import pytest
from aiohttp import web

from aimm_operator.apply import apply, apply_status, owns_field
from aimm_operator.coalesce import Coalescer
from aimm_operator.events import EventSink
from aimm_operator.handlers import NoDiffBase, OperatorSettings, build_registry, configure
from aimm_operator.kube import Credentials, Kube, KubeError, RetryPolicy, resource_path
from aimm_operator.status import EventSpec


async def test_coalescer_shares_runs_and_never_overlaps() -> None:
    running = 0
    peak = 0
    calls: list[str] = []

    async def run(key: str) -> None:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        calls.append(key)
        await asyncio.sleep(0.02)
        running -= 1

    c: Coalescer[str] = Coalescer(run)
    await asyncio.gather(*(c.request("ns") for _ in range(20)))
    assert peak == 1 and calls == ["ns", "ns"]  # the first run plus one follow-up for the other 19
    await asyncio.gather(c.request("a"), c.request("b"))
    assert sorted(calls[2:]) == ["a", "b"] and not c.busy("a")


async def test_coalescer_propagates_errors() -> None:
    async def boom(key: str) -> None:
        raise ValueError(key)

    c: Coalescer[str] = Coalescer(boom)
    with pytest.raises(ValueError):
        await c.request("x")


async def test_a_kick_returns_at_once_and_shares_the_follow_up_run() -> None:
    """Watch-event handlers kick instead of waiting, so kopf's per-object workers end at once."""
    gate = asyncio.Event()
    calls: list[str] = []

    async def run(key: str) -> None:
        calls.append(key)
        await gate.wait()

    c: Coalescer[str] = Coalescer(run)
    first = c.kick("ns")
    await asyncio.sleep(0)
    later = [c.kick("ns") for _ in range(100)]  # a burst while the first run is in progress
    assert not first.done() and calls == ["ns"] and len({id(f) for f in later}) == 1
    gate.set()
    await later[0]
    assert first.done() and calls == ["ns", "ns"] and not c.busy("ns")

    async def boom(key: str) -> None:
        raise ValueError(key)

    failing: Coalescer[str] = Coalescer(boom)
    fut = failing.kick("x")  # nobody awaits it: its error must not be reported as never retrieved
    await asyncio.sleep(0.01)
    assert isinstance(fut.exception(), ValueError)


@dataclass
class Seen:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes


Answer = Callable[[Seen], tuple[int, Any]]  # a request -> (status, JSON body or text)


@contextlib.asynccontextmanager
async def api_server(answer: Answer) -> AsyncIterator[tuple[Kube, list[Seen]]]:
    """A real HTTP server on loopback answering like the API server would, and a Kube client of it."""
    seen: list[Seen] = []

    async def handle(request: web.Request) -> web.Response:
        req = Seen(request.method, request.path, dict(request.query), dict(request.headers), await request.read())
        seen.append(req)
        status, body = answer(req)
        if isinstance(body, str):
            return web.Response(status=status, text=body)
        return web.json_response(body, status=status)

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    k = Kube(Credentials(server=f"http://127.0.0.1:{port}", token="t"), retry=RetryPolicy(4, 0, 0))
    try:
        yield k, seen
    finally:
        await k.aclose()
        await runner.cleanup()


async def test_conflicts_are_retried() -> None:
    def answer(req: Seen) -> tuple[int, Any]:
        if len(seen) < 3:
            return 409, {"reason": "Conflict", "message": "the object has been modified"}
        return 200, {"kind": "ConfigMap"}

    async with api_server(answer) as (k, seen):
        out = await apply(k, {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "namespace": "n"}})
    assert out == {"kind": "ConfigMap"} and len(seen) == 3
    r = seen[-1]
    assert r.method == "PATCH" and r.path == "/api/v1/namespaces/n/configmaps/c"
    assert r.headers["Content-Type"] == "application/apply-patch+yaml"
    assert r.query["fieldManager"] == "aimm-operator" and r.query["force"] == "true"
    assert r.headers["Authorization"] == "Bearer t"


async def test_non_retriable_errors_raise_at_once() -> None:
    async with api_server(lambda r: (403, {"reason": "Forbidden", "message": "no"})) as (k, seen):
        with pytest.raises(KubeError) as err:
            await k.get("ConfigMap", "n", "c")
    assert err.value.status == 403 and len(seen) == 1 and not err.value.retriable
    assert err.value.reason == "Forbidden" and err.value.message == "no"


async def test_exhausted_retries_raise() -> None:
    async with api_server(lambda r: (503, "down")) as (k, seen):
        with pytest.raises(KubeError) as err:
            await k.list("AIModel", "n")
    assert err.value.status == 503 and err.value.message == "down" and len(seen) == 4


async def test_transport_errors_are_retriable() -> None:
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    k = Kube(Credentials(server=f"http://127.0.0.1:{port}"), retry=RetryPolicy(2, 0, 0))
    with pytest.raises(KubeError) as err:
        await k.get("ConfigMap", "n", "c")
    await k.aclose()
    assert err.value.status == 0 and err.value.retriable


async def test_status_apply_targets_the_subresource_and_tolerates_deletion() -> None:
    async with api_server(lambda r: (404, {"reason": "NotFound", "message": "gone"})) as (k, seen):
        assert (
            await apply_status(k, "AIModel", "n", "m", {"observedGeneration": 1}, manager="aimm-operator-stats") is None
        )
    body = json.loads(seen[0].body)
    assert seen[0].path == "/apis/aimm.io/v1alpha1/namespaces/n/aimodels/m/status"
    assert body["status"] == {"observedGeneration": 1} and body["kind"] == "AIModel"
    assert seen[0].query["fieldManager"] == "aimm-operator-stats"


def test_resource_path_and_field_ownership() -> None:
    assert resource_path("v1", "pods") == "/api/v1/pods"
    assert (
        resource_path("apps/v1", "deployments", "n", "d", "scale") == "/apis/apps/v1/namespaces/n/deployments/d/scale"
    )
    mf = [
        {"manager": "aimm-operator", "fieldsV1": {"f:spec": {"f:replicas": {}, "f:template": {}}}},
        {"manager": "kube-controller-manager", "fieldsV1": {"f:spec": {"f:replicas": {}}}},
    ]
    assert owns_field(mf, "aimm-operator", ("spec", "replicas"))
    assert not owns_field(mf, "aimm-operator", ("spec", "selector"))
    assert not owns_field(None, "x", ("spec",))


def test_trim_gives_freed_heap_pages_back() -> None:
    """What a burst frees stays in glibc's heap until trimmed (issue 15: 18.5 MB at 5,000 models)."""
    import sys
    from pathlib import Path

    from aimm_operator import heap

    if not sys.platform.startswith("linux") or heap._libc_trim() is None:
        pytest.skip("malloc_trim is glibc's")

    def rss_kb() -> int:
        line = next(x for x in Path("/proc/self/status").read_text().splitlines() if x.startswith("VmRSS:"))
        return int(line.split()[1])

    heap.trim()
    blocks = [bytearray(2048) for _ in range(40_000)]  # 80 MB of malloc'd chunks (over pymalloc's 512 B)
    kept = blocks[::50]  # a few survivors, as the index entries a burst leaves behind
    del blocks
    freed = rss_kb()
    assert heap.trim()
    assert rss_kb() < freed - 20_000  # tens of MB back to the system
    assert len(kept) == 800


async def test_events_wait_while_statuses_are_written() -> None:
    async with api_server(lambda r: (201, {"kind": "Event"})) as (k, seen):
        sink = EventSink(k, workers=2)
        with sink.writing():
            sink.post({"kind": "AIModel", "name": "m", "namespace": "n"}, EventSpec("Normal", "Ready", "ready"))
            await asyncio.sleep(0.2)
            assert seen == []  # held while a status write batch is in flight
        await asyncio.wait_for(sink.drain(), 5)
        assert [(s.method, s.path) for s in seen] == [("POST", "/api/v1/namespaces/n/events")]
        assert json.loads(seen[0].body)["reason"] == "Ready"
        await sink.aclose()


def test_kopf_keeps_no_diff_base() -> None:
    """No handler needs one: the registry holds no change-detecting handler and no idle timer."""
    settings = kopf.OperatorSettings()
    configure(settings)
    assert isinstance(settings.persistence.diffbase_storage, NoDiffBase)
    assert settings.persistence.diffbase_storage.build(body=kopf.Body({"spec": {"a": 1}})) == {}
    registry = build_registry(OperatorSettings(Credentials(server="http://api")))
    assert not registry._changing.get_all_handlers()
