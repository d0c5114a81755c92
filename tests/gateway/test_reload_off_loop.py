"""A reload parses, validates and builds the new runtime off the event loop; the loop only swaps.

Not timed against a target (that is `make bench`'s job): the test counts how often the event
loop ran other tasks during a reload, none when the work is done on the loop as before, many
when it is done in the worker thread.
"""

from __future__ import annotations

import asyncio
import gzip
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import orjson
import yaml

from aimm_gateway.config import GatewayConfig, load_config
from aimm_gateway.reload import RELOAD_SWITCH_INTERVAL_S, ConfigWatcher, GilHandedBackSoon
from aimm_gateway.runtime import Runtime
from aimm_gateway.service import Gateway
from tests.kubelet_volumes import write_secret_volume


def _config(n: int, tag: str) -> dict:
    models = [{"name": f"{tag}-{i}", "provider": "mock", "headers": {"x-team": f"t{i % 7}"}} for i in range(n)]
    # Every reload replaces all models: said explicitly, or the reload guard refuses the drop.
    allow = {"reload": {"allow_shrink": True}}
    return {"models": models, "routes": [{"name": "r", "targets": [{"model": f"{tag}-0"}]}], "hardening": allow}


async def _loop_turns(action: Callable[[], Awaitable[bool]]) -> int:
    """How many times the event loop got to run another task (a 1 ms ticker) while `action` ran."""
    return (await _loop_while(action))[0]


async def _loop_while(action: Callable[[], Awaitable[bool]]) -> tuple[int, float, float]:
    """While `action` ran: the ticker's turns, the longest the loop kept it waiting, and how long
    `action` took (seconds)."""
    done = asyncio.Event()
    turns, longest = 0, 0.0

    async def ticker() -> None:
        nonlocal turns, longest
        last = time.perf_counter()
        while not done.is_set():
            await asyncio.sleep(0.001)
            now = time.perf_counter()
            turns, longest, last = turns + 1, max(longest, now - last), now

    task = asyncio.create_task(ticker())
    await asyncio.sleep(0.01)
    before, longest = turns, 0.0
    started = time.perf_counter()
    assert await action()
    took = time.perf_counter() - started
    during = turns - before
    done.set()
    await task
    return during, longest, took


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


def test_the_swap_on_the_loop_is_a_small_part_of_a_reload(tmp_path: Path) -> None:
    # What runs on the loop is the swap and what must follow it at once (the model gauges): kept
    # to what changed, so no request waits on work proportional to the config (re-making every
    # model's gauge series held the loop for a third of a 3,000-model reload).
    path = tmp_path / "config.json"
    path.write_bytes(orjson.dumps(_config(3000, "a")))
    gw = Gateway.from_file(path)
    watcher: ConfigWatcher[Runtime] = ConfigWatcher(
        path, gw.prepare_runtime, gw.install_runtime, lambda ok: None, lambda: 3600.0
    )

    async def main() -> tuple[int, float, float]:
        config = _config(3000, "a")
        config["models"][1]["headers"] = {"x-team": "edited"}  # one model edited, as an AIModel edit does
        path.write_bytes(orjson.dumps(config))
        return await _loop_while(watcher.check_async)

    _, longest, took = asyncio.run(main())
    assert gw.runtime.models["a-1"].headers == {"x-team": "edited"}
    assert longest < took / 4, f"the loop waited {longest * 1000:.1f} ms of a {took * 1000:.1f} ms reload"


def test_a_reload_asks_for_the_gil_often_while_it_builds_and_restores_the_interval(tmp_path: Path) -> None:
    path = tmp_path / "config.json"
    path.write_bytes(orjson.dumps(_config(3, "a")))
    gw = Gateway.from_file(path)
    seen: list[float] = []

    def prepare(config: GatewayConfig) -> Runtime:
        seen.append(sys.getswitchinterval())  # in the worker thread, while the loop waits to serve
        if len(seen) == 2:
            raise ValueError("this build fails")
        return gw.prepare_runtime(config)

    watcher: ConfigWatcher[Runtime] = ConfigWatcher(path, prepare, gw.install_runtime, lambda ok: None, lambda: 3600.0)
    default = sys.getswitchinterval()

    async def main() -> list[bool]:
        results = []
        for tag in ("b", "c"):  # one that builds, one whose build fails
            path.write_bytes(orjson.dumps(_config(3, tag)))
            results.append(await watcher.check_async())
        return results

    assert asyncio.run(main()) == [True, False]
    assert seen == [RELOAD_SWITCH_INTERVAL_S] * 2 and default > RELOAD_SWITCH_INTERVAL_S
    assert sys.getswitchinterval() == default


def test_overlapping_builds_restore_the_interval_once_the_last_ends() -> None:
    gil, default = GilHandedBackSoon(), sys.getswitchinterval()
    first, second = gil.building(), gil.building()
    first.__enter__()
    second.__enter__()  # a SIGHUP's reload while the poll's is still building
    first.__exit__(None, None, None)
    assert sys.getswitchinterval() == RELOAD_SWITCH_INTERVAL_S  # the second still builds
    second.__exit__(None, None, None)
    assert sys.getswitchinterval() == default


def test_json_and_gzip_configs_load_like_yaml(tmp_path: Path) -> None:
    data = _config(3, "m")
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(data))
    (tmp_path / "c.json").write_bytes(orjson.dumps(data))
    (tmp_path / "c.gz").write_bytes(gzip.compress(orjson.dumps(data)))
    configs = [load_config(tmp_path / n) for n in ("c.yaml", "c.json", "c.gz")]
    assert configs[0] == configs[1] == configs[2] and [m.name for m in configs[0].models] == ["m-0", "m-1", "m-2"]


def test_a_rotated_key_in_a_mounted_secret_reaches_the_gateway_without_restart(tmp_path: Path) -> None:
    keys = tmp_path / "keys" / "team"
    write_secret_volume(keys, {"gpt": b"sk-old"})
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
    write_secret_volume(keys, {"gpt": b"sk-new", "later": b"sk-later"})  # rotation + a key added
    assert watcher.check() is True
    assert gw.runtime.api_key_values["gpt"] == "sk-new" and gw.runtime.api_key_values["later"] == "sk-later"
    assert "later" not in gw.runtime.unusable and watcher.check() is False
