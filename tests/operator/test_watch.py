"""The operator's own list+watch (operator/watch.py) against the real API server: events in order,
a relist that reports what was deleted while it was not watching, and "410 Gone" for a version
too old."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

from aimm_operator.credentials import Credentials, load_credentials
from aimm_operator.kube import Kube, KubeError
from aimm_operator.watch import Backoff, Gone, Scope, Watcher
from tests.operator.kubeapi import Api
from tests.operator.manifests import model
from tests.operator.proxy import FaultProxy

T = TypeVar("T")
Seen = list[tuple[str, str, str]]  # (kind, event type, name)


def _run(creds: Credentials | Path, body: Callable[[Kube, Seen], Awaitable[T]]) -> T:
    """`body` with an API client as the operator (its kubeconfig, or credentials as they are)."""

    async def main() -> T:
        kube = Kube(creds if isinstance(creds, Credentials) else load_credentials(str(creds)))
        try:
            return await body(kube, [])
        finally:
            await kube.aclose()

    return asyncio.run(main())


class Recorder:
    """The watch's callback: what it was handed, and a wait for the n-th event."""

    def __init__(self, seen: Seen) -> None:
        self.seen = seen
        self._moved = asyncio.Event()

    def __call__(self, kind: str, event: str, obj: Any) -> None:
        self.seen.append((kind, event, obj["metadata"]["name"]))
        self._moved.set()

    async def until(self, n: int) -> None:
        async with asyncio.timeout(20):
            while len(self.seen) < n:
                self._moved.clear()
                await self._moved.wait()


def test_a_watch_lists_first_then_follows_changes_in_order(api: Api, ns: str, operator_kubeconfig: Path) -> None:
    api.apply(model(ns, "a"))
    api.apply(model(ns, "b"))

    async def body(kube: Kube, seen: Seen) -> Seen:
        recorder = Recorder(seen)
        watcher = Watcher(kube, [Scope("AIModel", ns), Scope("AIGateway", ns)], recorder, page_size=1)
        watcher.start()
        try:
            await asyncio.wait_for(watcher.synced.wait(), 20)
            assert sorted(seen) == [("AIModel", "ADDED", "a"), ("AIModel", "ADDED", "b")]  # two pages of one
            seen.clear()
            await asyncio.to_thread(api.merge_patch, "AIModel", ns, "a", {"spec": {"weight": 3}})
            await asyncio.to_thread(api.apply, model(ns, "c"))
            await asyncio.to_thread(api.request, "DELETE", f"/apis/aimm.io/v1alpha1/namespaces/{ns}/aimodels/b")
            await recorder.until(3)
            return list(seen)
        finally:
            await watcher.aclose()

    assert _run(operator_kubeconfig, body) == [
        ("AIModel", "MODIFIED", "a"),
        ("AIModel", "ADDED", "c"),
        ("AIModel", "DELETED", "b"),
    ]


def test_a_relist_reports_what_was_deleted_meanwhile(api: Api, ns: str, operator_kubeconfig: Path) -> None:
    api.apply(model(ns, "kept"))
    api.apply(model(ns, "gone"))
    scope = Scope("AIModel", ns)

    async def body(kube: Kube, seen: Seen) -> Seen:
        watcher = Watcher(kube, [scope], Recorder(seen))
        known: dict[str, tuple[str, str]] = {}
        await watcher._list(scope, known)
        seen.clear()
        await asyncio.to_thread(api.request, "DELETE", f"/apis/aimm.io/v1alpha1/namespaces/{ns}/aimodels/gone")
        await asyncio.to_thread(api.apply, model(ns, "new"))
        await watcher._list(scope, known)  # as after "410 Gone": the watch missed both changes
        assert sorted(name for _, name in known.values()) == ["kept", "new"]
        return sorted(seen)

    assert _run(operator_kubeconfig, body) == [
        ("AIModel", "ADDED", "new"),
        ("AIModel", "DELETED", "gone"),
        ("AIModel", "MODIFIED", "kept"),
    ]


def test_a_version_too_old_is_gone(api: Api, ns: str, operator_kubeconfig: Path) -> None:
    """The API server answers a watch from a compacted or uncached version with 410 (as an HTTP
    status or as an ERROR event): either way the watch lists again."""
    scope = Scope("AIModel", ns)

    async def body(kube: Kube, seen: Seen) -> int:
        watcher = Watcher(kube, [scope], Recorder(seen), timeout_s=5)
        try:
            await watcher._watch(scope, "1", {})
        except Gone:
            return 410
        except KubeError as exc:
            return exc.status
        return 0

    assert _run(operator_kubeconfig, body) == 410


def test_backoff_grows_and_is_capped() -> None:
    backoff = Backoff(initial_s=0.5, max_s=2.0)
    assert [backoff.next() for _ in range(4)] == [0.5, 1.0, 2.0, 2.0]
    backoff.reset()
    assert backoff.next() == 0.5


def test_a_failing_consumer_does_not_kill_the_watch(api: Api, ns: str, operator_kubeconfig: Path) -> None:
    """An exception in the callback (a bug) is logged and the scope listed again after a pause:
    the watch goes on instead of leaving the operator silently stale."""
    api.apply(model(ns, "a"))

    async def body(kube: Kube, seen: Seen) -> Seen:
        recorder = Recorder(seen)
        failed: list[str] = []

        def flaky(kind: str, event: str, obj: Any) -> None:
            if not failed:
                failed.append(event)
                raise RuntimeError("a bug")
            recorder(kind, event, obj)

        watcher = Watcher(kube, [Scope("AIModel", ns)], flaky, backoff=lambda: Backoff(initial_s=0.05))
        watcher.start()
        try:
            await recorder.until(1)  # the same object, from the list made after the failure
            await asyncio.to_thread(api.apply, model(ns, "b"))
            await recorder.until(2)
            return list(seen)
        finally:
            await watcher.aclose()

    assert _run(operator_kubeconfig, body) == [("AIModel", "ADDED", "a"), ("AIModel", "ADDED", "b")]


def test_refusals_beyond_the_clients_retries_are_retried_by_the_watch(
    api: Api, ns: str, proxy: FaultProxy, operator_token: str
) -> None:
    """The API server answering 503 (an apiserver restart, overload) more often than the client's
    own retries of one request (5): the watch backs off, lists again, and then follows changes."""
    api.apply(model(ns, "a"))
    refusals = proxy.inject("GET", rf"/namespaces/{ns}/aimodels$", 503, times=8)

    async def body(kube: Kube, seen: Seen) -> Seen:
        recorder = Recorder(seen)
        watcher = Watcher(kube, [Scope("AIModel", ns)], recorder, backoff=lambda: Backoff(initial_s=0.05))
        watcher.start()
        try:
            await asyncio.wait_for(watcher.synced.wait(), 20)
            await asyncio.to_thread(api.apply, model(ns, "b"))
            await recorder.until(2)
            return list(seen)
        finally:
            await watcher.aclose()

    creds = Credentials(server=proxy.url, token=operator_token)
    assert _run(creds, body) == [("AIModel", "ADDED", "a"), ("AIModel", "ADDED", "b")]
    assert refusals.hits == 8
