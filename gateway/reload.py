"""Watch the config file and swap the runtime when it changes, without stalling requests.

Polls the file's identity (resolved path, inode, mtime, size) rather than using inotify: that
also sees Kubernetes' ConfigMap updates, which swap a `..data` symlink instead of writing.
Reading, parsing, validating and building the new runtime happen in a worker thread (a large
config takes a while; the event loop keeps serving meanwhile); only the swap itself, one
assignment, runs on the loop. A broken file is refused with one clear log line and the old
config keeps serving.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Generic, TypeVar

from pydantic import BaseModel

from aimm_gateway.config import ConfigError, GatewayConfig, SecretRef, load_config

log = logging.getLogger("aimm.gateway.reload")

FileId = tuple[str, int, int, int]
R = TypeVar("R")


def file_id(path: Path) -> FileId | None:
    try:
        real = os.path.realpath(path)
        st = os.stat(real)
    except OSError:
        return None
    return (real, st.st_ino, st.st_mtime_ns, st.st_size)


def secret_files(node: object) -> tuple[str, ...]:
    """Every `{file: ...}` secret a config references (model keys, client keys, admin token ...)."""
    found: dict[str, None] = {}

    def walk(value: object) -> None:
        if isinstance(value, SecretRef):
            if value.file is not None:
                found[value.file] = None
        elif isinstance(value, BaseModel):
            for name in type(value).model_fields:
                walk(getattr(value, name))
        elif isinstance(value, (list, tuple)):
            for item in value:
                walk(item)
        elif isinstance(value, dict):
            for item in value.values():
                walk(item)

    walk(node)
    return tuple(found)


def files_id(paths: tuple[str, ...]) -> tuple[object, ...]:
    """Identity of the secret files. A directory the kubelet manages (a Secret volume swaps its
    `..data` symlink on every update) counts once, however many keys it holds; other files one by one."""
    out: list[object] = []
    seen_dirs: set[str] = set()
    for path in paths:
        folder = os.path.dirname(path) or "."
        if folder in seen_dirs:
            continue
        data = os.path.join(folder, "..data")
        if os.path.islink(data):
            seen_dirs.add(folder)
            out.append((folder, os.path.realpath(data)))
        else:
            out.append(file_id(Path(path)))
    return tuple(out)


RELOAD_SWITCH_INTERVAL_S = 0.0005


class GilHandedBackSoon:
    """While a reload builds in its thread, the interpreter asks it for the GIL every 0.5 ms, not
    every 5 ms: each time the serving loop comes back from the kernel (a socket ready) it needs the
    GIL, and at the default interval a request that does so a few times waited 20-30 ms behind a
    1,000-model build. Only while a build runs (more switching costs the build a little); two that
    overlap (the poll and a SIGHUP) restore the interval once, when the last one ends. Entered and
    left on the event loop's thread only."""

    def __init__(self) -> None:
        self._building = 0
        self._before = 0.0

    @contextmanager
    def building(self) -> Iterator[None]:
        if self._building == 0:
            self._before = sys.getswitchinterval()
            sys.setswitchinterval(min(self._before, RELOAD_SWITCH_INTERVAL_S))
        self._building += 1
        try:
            yield
        finally:
            self._building -= 1
            if self._building == 0:
                sys.setswitchinterval(self._before)


class ConfigWatcher(Generic[R]):
    """`prepare(config)` builds what a new config needs (any thread); `install(config, prepared)`
    swaps it in (on the loop, cheap); `on_result(ok)` counts reloads. A change of a secret file the
    config references (a rotated key in a mounted Secret) reloads too: keys are read at build time."""

    def __init__(
        self,
        path: Path,
        prepare: Callable[[GatewayConfig], R],
        install: Callable[[GatewayConfig, R], None],
        on_result: Callable[[bool], None],
        interval_s: Callable[[], float],
        current: GatewayConfig | None = None,
    ) -> None:
        self._path = path
        self._prepare = prepare
        self._install = install
        self._on_result = on_result
        self._interval_s = interval_s
        self._seen = file_id(path)
        self._secrets = secret_files(current) if current is not None else ()
        self._secrets_seen = files_id(self._secrets)
        self._task: asyncio.Task[None] | None = None
        self._gil = GilHandedBackSoon()

    def start(self) -> None:
        gc.freeze()  # the startup snapshot too (see _swap)
        self._task = asyncio.get_running_loop().create_task(self._run(), name="config-watcher")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self._interval_s())
            await self.check_async()

    def _changed(self) -> bool:
        current = file_id(self._path)
        if current is None:
            return False
        secrets = files_id(self._secrets)
        if current == self._seen and secrets == self._secrets_seen:
            return False
        self._seen, self._secrets_seen = current, secrets
        return True

    def _load(self) -> tuple[GatewayConfig, R]:
        config = load_config(self._path)
        files = secret_files(config)
        seen = files_id(files)  # before the keys are read: a change after this is seen next time
        prepared = self._prepare(config)
        self._secrets, self._secrets_seen = files, seen
        return config, prepared

    async def check_async(self) -> bool:
        """Reload if the file changed, preparing in a worker thread; True when a new config was applied."""
        if not self._changed():
            return False
        collecting = gc.isenabled()
        gc.disable()  # no full collection over the half-built snapshot while requests wait (see _swap)
        try:
            try:
                with self._gil.building():
                    config, prepared = await asyncio.to_thread(self._load)
            except Exception as exc:  # a config or runtime that cannot be built must not take the gateway down
                return self._refused(exc)
            return self._swap(config, prepared)
        finally:
            if collecting:
                gc.enable()

    def check(self) -> bool:
        """The same, synchronously in the caller's thread (tests, signal handlers)."""
        if not self._changed():
            return False
        try:
            config, prepared = self._load()
        except Exception as exc:
            return self._refused(exc)
        return self._swap(config, prepared)

    def _swap(self, config: GatewayConfig, prepared: R) -> bool:
        try:
            self._install(config, prepared)
        except Exception as exc:
            return self._refused(exc)
        # The new snapshot lives until the next reload: move it out of the collector's generations,
        # or every full collection re-scans thousands of models while holding the GIL (a 100-200 ms
        # stall of the serving loop at 3,000 models). Dropped snapshots are still freed by refcount.
        gc.freeze()
        log.info("config reloaded from %s", self._path)
        self._on_result(True)
        return True

    def _refused(self, exc: Exception) -> bool:
        detail = str(exc) if isinstance(exc, ConfigError) else f"{type(exc).__name__}: {exc}"
        log.error("config reload refused, still serving the previous config: %s", detail)
        self._on_result(False)
        return False
