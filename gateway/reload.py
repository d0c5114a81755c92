"""Watch the config file and swap the runtime when it changes.

Polls the file's identity (resolved path, inode, mtime, size) rather than using inotify: that
also sees Kubernetes' ConfigMap updates, which swap a `..data` symlink instead of writing.
A broken file is refused with one clear log line and the old config keeps serving.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Callable
from pathlib import Path

from aimm_gateway.config import ConfigError, GatewayConfig, load_config

log = logging.getLogger("aimm.gateway.reload")

FileId = tuple[str, int, int, int]


def file_id(path: Path) -> FileId | None:
    try:
        real = os.path.realpath(path)
        st = os.stat(real)
    except OSError:
        return None
    return (real, st.st_ino, st.st_mtime_ns, st.st_size)


class ConfigWatcher:
    def __init__(
        self,
        path: Path,
        apply: Callable[[GatewayConfig], None],
        on_result: Callable[[bool], None],
        interval_s: Callable[[], float],
    ) -> None:
        self._path = path
        self._apply = apply
        self._on_result = on_result
        self._interval_s = interval_s
        self._seen = file_id(path)
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="config-watcher")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self._interval_s())
            self.check()

    def check(self) -> bool:
        """Reload if the file changed; True when a new config was applied."""
        current = file_id(self._path)
        if current is None or current == self._seen:
            return False
        self._seen = current
        try:
            config = load_config(self._path)
            self._apply(config)
        except ConfigError as exc:
            log.error("config reload refused, still serving the previous config: %s", exc)
            self._on_result(False)
            return False
        except Exception as exc:  # a runtime that cannot be built must not take the gateway down
            log.error("config reload refused, still serving the previous config: %s: %s", type(exc).__name__, exc)
            self._on_result(False)
            return False
        log.info("config reloaded from %s", self._path)
        self._on_result(True)
        return True
