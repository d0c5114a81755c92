"""Live reload: atomic swaps under load, and a broken file never replaces a good one."""

from __future__ import annotations

import asyncio
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import openai
import yaml

from tests.gateway.conftest import API_KEY, RunningGateway, Upstream, base_config, upstream_model

Start = Callable[[dict[str, Any]], RunningGateway]


def _config(upstream: Upstream, generation: int) -> dict[str, Any]:
    # Each generation changes prices and adds a model, so every reload is a real change.
    return base_config(
        [
            upstream_model(
                "m", upstream, pricing={"input_per_1k": f"0.00{generation % 9 + 1}", "output_per_1k": "0.002"}
            ),
            {"name": f"extra-{generation}", "provider": "mock"},
        ],
        server={"reload_interval_s": 0.05},
        # Each generation replaces the previous extra model: say so, or the reload guard refuses the drop.
        hardening={"reload": {"allow_shrink": True}},
    )


def test_fifty_reloads_while_twenty_clients_stream(openai_upstream: Upstream, start_gateway: Start) -> None:
    gw = start_gateway(_config(openai_upstream, 0))
    openai_upstream.set_faults(stream_chunks=8, chunk_interval_ms=2)
    stop = threading.Event()
    hashes: set[str] = set()

    errors: list[BaseException] = []

    def reloader() -> None:
        try:
            for generation in range(1, 51):
                _write_atomically(gw.config_path, yaml.safe_dump(_config(openai_upstream, generation)))
                gw.gateway.reload_now()  # the background watcher may have won the race; both are fine
                deadline = time.monotonic() + 5
                while f"extra-{generation}" not in gw.gateway.runtime.models and time.monotonic() < deadline:
                    time.sleep(0.005)
                hashes.add(gw.gateway.runtime.config_hash)
                stop.wait(0.02)
        except BaseException as exc:
            errors.append(exc)
        finally:
            stop.set()  # never leave the clients looping

    async def client_loop(client: openai.AsyncOpenAI, results: list[str]) -> None:
        while not stop.is_set():
            stream = await client.chat.completions.create(
                model="m", messages=[{"role": "user", "content": "count to ten"}], stream=True
            )
            text = ""
            finish = None
            async for chunk in stream:
                if chunk.choices:
                    text += chunk.choices[0].delta.content or ""
                    finish = chunk.choices[0].finish_reason or finish
            assert finish == "stop" and text
            results.append(text)

    async def main() -> list[str]:
        results: list[str] = []
        client = openai.AsyncOpenAI(base_url=gw.v1, api_key=API_KEY, max_retries=0, timeout=30)
        thread = threading.Thread(target=reloader)
        thread.start()
        try:
            await asyncio.gather(*(client_loop(client, results) for _ in range(20)))
        finally:
            stop.set()
            thread.join()
            await client.close()
        return results

    results = asyncio.run(main())
    assert not errors, errors
    assert len(hashes) == 50
    assert gw.gateway.runtime.models.keys() == {"m", "extra-50"}
    assert len(results) >= 20  # every client finished at least one full stream, none failed


def test_broken_file_keeps_old_config(openai_upstream: Upstream, start_gateway: Start, caplog: Any) -> None:
    gw = start_gateway(_config(openai_upstream, 1))
    before = gw.gateway.runtime.config_hash
    gw.config_path.write_text("models:\n  - name: x\n    provider: not-a-provider\n")
    with caplog.at_level("ERROR"):
        assert gw.gateway.reload_now() is False
    assert gw.gateway.runtime.config_hash == before
    assert "models[0].provider" in caplog.text and "still serving the previous config" in caplog.text
    gw.config_path.write_text(": : not yaml [")
    assert gw.gateway.reload_now() is False
    with gw.client() as c:
        assert (
            c.post(
                "/v1/chat/completions", json={"model": "m", "messages": [{"role": "user", "content": "hi"}]}
            ).status_code
            == 200
        )


def test_watcher_picks_up_changes_by_itself(openai_upstream: Upstream, start_gateway: Start) -> None:
    gw = start_gateway(_config(openai_upstream, 1))
    gw.config_path.write_text(yaml.safe_dump(_config(openai_upstream, 2)))
    deadline = asyncio.run(_wait_for(lambda: "extra-2" in gw.gateway.runtime.models, 5.0))
    assert deadline, "the watcher did not reload within 5 s"


def _write_atomically(path: Path, text: str) -> None:
    # As kubelet (ConfigMap symlink swap) and editors do: readers never see half a file.
    tmp = path.with_suffix(".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


async def _wait_for(cond: Callable[[], bool], within_s: float) -> bool:
    loop = asyncio.get_running_loop()
    end = loop.time() + within_s
    while loop.time() < end:
        if cond():
            return True
        await asyncio.sleep(0.05)
    return cond()
