"""The operator's own list and watch of its four custom kinds, feeding the object store.

kopf took every watch event through its per-object machinery (a memory, three loggers, a body
view, a patch, cause detection, the index and the event handlers, a worker task per object). At
1,000 AIModels that was ~30 % of the operator's CPU, mostly on the events of its own status
writes, on the two cores the API server needed for those writes. What a controller needs from a
watch is what client-go's reflector does, and that is all this does:

- list in pages, then watch from the list's resourceVersion, with bookmarks (so a resumed watch
  starts from a recent version even when nothing of ours changed);
- a watch the server ends (its timeout) is resumed from the last version seen;
- "410 Gone" (that version is too old for the server) lists again, and an object known before
  and missing from the new list is reported deleted;
- any other failure is retried after an exponentially growing pause.

`synced` is set once every scope has delivered its first list: the operator reconciles nothing
before, so a start never compiles a config from a partial namespace. kopf still runs the rest:
login, startup and cleanup, the stats timer on AIGateways, the CRD watch.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from aimm_operator.kube import RESOURCES, Kube, KubeError, resource_path

log = logging.getLogger("aimm_operator.watch")

WatchFn = Callable[[str, str, Mapping[str, Any]], None]  # (kind, "ADDED"|"MODIFIED"|"DELETED", object)


@dataclass(frozen=True)
class Scope:
    kind: str
    namespace: str | None  # None: every namespace

    @property
    def path(self) -> str:
        api_version, plural = RESOURCES[self.kind]
        return resource_path(api_version, plural, self.namespace)


class Gone(Exception):
    """The resourceVersion the watch asked for is too old: list again."""


@dataclass
class Backoff:
    initial_s: float = 0.5
    max_s: float = 30.0
    failures: int = 0

    def next(self) -> float:
        self.failures += 1
        return float(min(self.max_s, self.initial_s * 2 ** (self.failures - 1)))

    def reset(self) -> None:
        self.failures = 0


def _meta(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    return obj.get("metadata") or {}


Known = dict[str, tuple[str, str]]  # uid -> (namespace, name): enough to report a deletion, and small


def _key(obj: Mapping[str, Any]) -> tuple[str, tuple[str, str]]:
    meta = _meta(obj)
    return str(meta.get("uid") or ""), (str(meta.get("namespace") or ""), str(meta.get("name") or ""))


def _gone(uid: str, where: tuple[str, str]) -> dict[str, Any]:
    """What a DELETED event carries for an object found missing by a new list."""
    return {"metadata": {"uid": uid, "namespace": where[0], "name": where[1]}}


class Watcher:
    """One list+watch loop per scope, each event handed to `on_event` (synchronously, in order)."""

    def __init__(
        self,
        kube: Kube,
        scopes: list[Scope],
        on_event: WatchFn,
        *,
        page_size: int = 500,
        timeout_s: int = 300,
        backoff: Callable[[], Backoff] = Backoff,
    ) -> None:
        self._kube = kube
        self._scopes = scopes
        self._on_event = on_event
        self._page_size = page_size
        self._timeout_s = timeout_s
        self._backoff = backoff
        self._unsynced = set(scopes)
        self._tasks: list[asyncio.Task[None]] = []
        self.synced = asyncio.Event()
        if not scopes:
            self.synced.set()

    def start(self) -> None:
        self._tasks = [
            asyncio.create_task(self._follow(s), name=f"watch-{s.kind}-{s.namespace or '*'}") for s in self._scopes
        ]

    async def aclose(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []

    async def _follow(self, scope: Scope) -> None:
        known: Known = {}
        version: str | None = None
        backoff = self._backoff()
        while True:
            try:
                if version is None:
                    version = await self._list(scope, known)
                    self._listed(scope)
                version = await self._watch(scope, version, known)
                backoff.reset()
            except Gone:
                log.info("watch of %s: resourceVersion too old, listing again", scope.path)
                version = None
            except KubeError as exc:
                if exc.status == 410:
                    version = None
                    continue
                delay = backoff.next()
                log.warning("watch of %s failed (again in %.1fs): %s", scope.path, delay, exc)
                await asyncio.sleep(delay)
            except Exception:  # a bug in a consumer: never a silently dead watch; list afresh
                delay = backoff.next()
                log.exception("watch of %s: unexpected error (listing again in %.1fs)", scope.path, delay)
                version = None
                await asyncio.sleep(delay)

    def _listed(self, scope: Scope) -> None:
        self._unsynced.discard(scope)
        if not self._unsynced:
            self.synced.set()

    async def _list(self, scope: Scope, known: Known) -> str:
        """Every object of the scope (as ADDED or MODIFIED), the ones gone since as DELETED; the
        list's resourceVersion."""
        listed: Known = {}
        cont, version = "", ""
        while True:
            params = {"limit": str(self._page_size), **({"continue": cont} if cont else {})}
            page = await self._kube.request("GET", scope.path, params=params)
            for item in page.get("items") or []:  # without apiVersion and kind: no consumer reads them
                uid, where = _key(item)
                listed[uid] = where
                self._on_event(scope.kind, "MODIFIED" if uid in known else "ADDED", item)
            meta = page.get("metadata") or {}
            version, cont = str(meta.get("resourceVersion") or version), str(meta.get("continue") or "")
            if not cont:
                break
        for uid in set(known) - set(listed):
            self._on_event(scope.kind, "DELETED", _gone(uid, known[uid]))
        known.clear()
        known.update(listed)
        return version

    async def _watch(self, scope: Scope, version: str, known: Known) -> str:
        """Events from `version` until the server ends the watch; the last version seen."""
        params = {
            "watch": "1",
            "allowWatchBookmarks": "true",
            "resourceVersion": version,
            "timeoutSeconds": str(self._timeout_s),
        }
        async for event in self._kube.stream(scope.path, params, read_timeout_s=self._timeout_s + 30):
            kind, obj = event.get("type"), event.get("object") or {}
            if kind == "ERROR":
                if obj.get("code") == 410:
                    raise Gone(obj.get("message", ""))
                raise KubeError(int(obj.get("code") or 0), str(obj.get("reason") or "WatchError"), str(obj))
            version = str(_meta(obj).get("resourceVersion") or version)
            if kind == "BOOKMARK":
                continue
            uid, where = _key(obj)
            if kind == "DELETED":
                known.pop(uid, None)
            else:
                known[uid] = where
            self._on_event(scope.kind, str(kind), obj)
        return version
