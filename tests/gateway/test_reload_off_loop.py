"""A reload parses, validates and builds the new runtime off the event loop; the loop only swaps.

Self-calibrating rather than timed against a fixed target: the longest loop stall during the
reload must be a small fraction of the time the same reload takes when done synchronously (which
is what every request waited for before: seconds for a few thousand models).
"""

from __future__ import annotations

import asyncio
import gzip
import time
from pathlib import Path

import orjson
import yaml

from aimm_gateway.config import load_config
from aimm_gateway.reload import ConfigWatcher
from aimm_gateway.runtime import Runtime
from aimm_gateway.service import Gateway


def _config(n: int, tag: str) -> dict:
    models = [{"name": f"{tag}-{i}", "provider": "mock", "headers": {"x-team": f"t{i % 7}"}} for i in range(n)]
    return {"models": models, "routes": [{"name": "r", "targets": [{"model": f"{tag}-0"}]}]}


def test_reload_of_a_large_config_does_not_stall_the_loop(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(_config(1500, "a")))
    gw = Gateway.from_file(path)
    results: list[bool] = []
    watcher: ConfigWatcher[Runtime] = ConfigWatcher(
        path, gw.prepare_runtime, gw.install_runtime, results.append, lambda: 3600.0
    )
    path.write_text(yaml.safe_dump(_config(1500, "b")))
    started = time.perf_counter()
    gw.prepare_runtime(load_config(path))  # what the loop used to do inline
    inline_s = time.perf_counter() - started

    async def main() -> float:
        loop = asyncio.get_running_loop()
        done = asyncio.Event()
        worst = 0.0

        async def probe() -> None:
            nonlocal worst
            while not done.is_set():
                t = loop.time()
                await asyncio.sleep(0.002)
                worst = max(worst, loop.time() - t - 0.002)

        task = asyncio.create_task(probe())
        await asyncio.sleep(0.01)
        assert await watcher.check_async()
        done.set()
        await task
        return worst

    worst = asyncio.run(main())
    assert results == [True] and "b-1499" in gw.runtime.models and "a-0" not in gw.runtime.models
    assert worst < inline_s / 3, (worst, inline_s)


def test_json_and_gzip_configs_load_like_yaml(tmp_path: Path) -> None:
    data = _config(3, "m")
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(data))
    (tmp_path / "c.json").write_bytes(orjson.dumps(data))
    (tmp_path / "c.gz").write_bytes(gzip.compress(orjson.dumps(data)))
    configs = [load_config(tmp_path / n) for n in ("c.yaml", "c.json", "c.gz")]
    assert configs[0] == configs[1] == configs[2] and [m.name for m in configs[0].models] == ["m-0", "m-1", "m-2"]
