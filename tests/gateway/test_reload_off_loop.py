"""A reload parses, validates and builds the new runtime off the event loop; the loop only swaps.

Not timed against a target (that is `make bench`'s job): the test counts how often the event
loop ran other tasks during a reload, none when the work is done on the loop as before, many
when it is done in the worker thread.
"""

from __future__ import annotations

import asyncio
import gzip
import os
from collections.abc import Awaitable, Callable
from pathlib import Path

import orjson
import yaml

from aimm_gateway.config import load_config
from aimm_gateway.reload import ConfigWatcher
from aimm_gateway.runtime import Runtime
from aimm_gateway.service import Gateway


def _config(n: int, tag: str) -> dict:
    models = [{"name": f"{tag}-{i}", "provider": "mock", "headers": {"x-team": f"t{i % 7}"}} for i in range(n)]
    # Every reload replaces all models: said explicitly, or the reload guard refuses the drop.
    allow = {"reload": {"allow_shrink": True}}
    return {"models": models, "routes": [{"name": "r", "targets": [{"model": f"{tag}-0"}]}], "hardening": allow}


async def _loop_turns(action: Callable[[], Awaitable[bool]]) -> int:
    """How many times the event loop got to run another task (a 1 ms ticker) while `action` ran."""
    done = asyncio.Event()
    turns = 0

    async def ticker() -> None:
        nonlocal turns
        while not done.is_set():
            await asyncio.sleep(0.001)
            turns += 1

    task = asyncio.create_task(ticker())
    await asyncio.sleep(0.01)
    before = turns
    assert await action()
    during = turns - before
    done.set()
    await task
    return during


def test_reload_of_a_large_config_keeps_the_loop_serving(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"  # JSON inside, as the operator writes it
    path.write_bytes(orjson.dumps(_config(3000, "a")))
    gw = Gateway.from_file(path)
    results: list[bool] = []
    watcher: ConfigWatcher[Runtime] = ConfigWatcher(
        path, gw.prepare_runtime, gw.install_runtime, results.append, lambda: 3600.0
    )

    async def inline() -> bool:  # what every reload did before: all the work on the loop
        return watcher.check()

    async def main() -> tuple[int, int]:
        path.write_bytes(orjson.dumps(_config(3000, "b")))
        on_loop = await _loop_turns(inline)
        path.write_bytes(orjson.dumps(_config(3000, "c")))
        off_loop = await _loop_turns(watcher.check_async)
        return on_loop, off_loop

    on_loop, off_loop = asyncio.run(main())
    assert results == [True, True] and "c-2999" in gw.runtime.models and "b-0" not in gw.runtime.models
    # Inline, nothing else ran for the whole reload; off the loop, other tasks (requests) kept running.
    assert on_loop == 0 and off_loop >= 10, (on_loop, off_loop)


def test_json_and_gzip_configs_load_like_yaml(tmp_path: Path) -> None:
    data = _config(3, "m")
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(data))
    (tmp_path / "c.json").write_bytes(orjson.dumps(data))
    (tmp_path / "c.gz").write_bytes(gzip.compress(orjson.dumps(data)))
    configs = [load_config(tmp_path / n) for n in ("c.yaml", "c.json", "c.gz")]
    assert configs[0] == configs[1] == configs[2] and [m.name for m in configs[0].models] == ["m-0", "m-1", "m-2"]


def _kubelet_secret(folder: Path, version: str, data: dict[str, str]) -> None:
    """Write a Secret volume the way the kubelet does: a versioned dir, an atomic `..data` swap."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / version).mkdir()
    for key, value in data.items():
        (folder / version / key).write_text(value)
        if not (folder / key).is_symlink():
            (folder / key).symlink_to(f"..data/{key}")
    tmp = folder / "..data_tmp"
    tmp.symlink_to(version)
    os.replace(tmp, folder / "..data")


def test_a_rotated_key_in_a_mounted_secret_reaches_the_gateway_without_restart(tmp_path: Path) -> None:
    keys = tmp_path / "keys" / "team"
    _kubelet_secret(keys, "..v1", {"gpt": "sk-old"})
    path = tmp_path / "config.yaml"
    model = {"name": "gpt", "provider": "openai", "api_key": {"file": str(keys / "gpt")}}
    path.write_bytes(
        orjson.dumps(
            {"models": [model, {"name": "later", "provider": "openai", "api_key": {"file": str(keys / "later")}}]}
        )
    )
    gw = Gateway.from_file(path)
    watcher: ConfigWatcher[Runtime] = ConfigWatcher(
        path, gw.prepare_runtime, gw.install_runtime, lambda ok: None, lambda: 3600.0, current=gw.file_config
    )
    assert gw.runtime.api_key_values["gpt"] == "sk-old" and "later" in gw.runtime.unusable
    assert watcher.check() is False  # nothing changed
    _kubelet_secret(keys, "..v2", {"gpt": "sk-new", "later": "sk-later"})  # rotation + a key added
    assert watcher.check() is True
    assert gw.runtime.api_key_values["gpt"] == "sk-new" and gw.runtime.api_key_values["later"] == "sk-later"
    assert "later" not in gw.runtime.unusable and watcher.check() is False
