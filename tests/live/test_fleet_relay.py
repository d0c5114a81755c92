"""Fleet-wide `models` and `alerts` through a real redis-server: a console on one replica sees
another replica's breaker opening and budget threshold; `requests` stays per replica."""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Any

import pytest
import yaml

from aimm_gateway.app import create_app
from aimm_gateway.service import Gateway
from tests.backing import RedisServer
from tests.gateway.conftest import Upstream, upstream_model
from tests.live.helpers import live_config, next_on, send, viewer
from tests.servers import run_asgi_app


@pytest.fixture
def fleet(tmp_path: Path, redis_server: RedisServer, monkeypatch: pytest.MonkeyPatch, upstreams: Any) -> Any:
    monkeypatch.setenv("AIMM_REDIS_URL", redis_server.url)
    flaky: Upstream = upstreams("openai", fail_rate=1.0, status_code=500)
    config = live_config(
        state={
            "redis": {"url": {"env": "AIMM_REDIS_URL"}, "timeout_ms": 2000, "key_prefix": f"t{secrets.token_hex(4)}:"}
        },
        budgets=[{"name": "tiny", "limit_usd": "0.00001", "thresholds": [100]}],
    )
    config["models"].append(upstream_model("flaky", flaky, circuit_breaker={"failure_threshold": 1, "timeout_s": 60}))
    path = tmp_path / "fleet.yaml"
    path.write_text(yaml.safe_dump(config))

    class Fleet:
        def __enter__(self) -> list[str]:
            self.servers = [run_asgi_app(create_app(Gateway.from_file(path))) for _ in range(2)]
            return [s.__enter__() for s in self.servers]

        def __exit__(self, *exc: object) -> None:
            for s in self.servers:
                s.__exit__(None, None, None)

    return Fleet()


async def test_another_replicas_breaker_and_budget_alerts_arrive(fleet: Any) -> None:
    with fleet as (a, b):
        async with viewer(b, "alerts,models,requests") as ws:
            hello = await next_on(ws, "control", type="hello")
            await send("POST", f"{a}/api/v1/query", json={"prompt": "x", "model": "flaky"})
            change = await next_on(ws, "models", type="model", model="flaky", within=5)
            assert change["status"]["circuit_state"] == "open" and change["pod"] != hello["pod"]
            alert = await next_on(ws, "alerts", kind="breaker_open", within=5)
            assert alert["model"] == "flaky" and alert["pod"] == change["pod"]
            await send("POST", f"{a}/api/v1/query", json={"prompt": "spend it all " * 20, "model": "fast"})
            budget = await next_on(ws, "alerts", kind="budget_threshold", within=5)
            assert budget["budget"] == "tiny" and budget["pod"] == change["pod"]
            # The request tail is per replica: B's socket saw none of A's requests.
            rid = (await send("POST", f"{b}/api/v1/query", json={"prompt": "here", "model": "fast"})).json()[
                "request_id"
            ]
            tail = await next_on(ws, "requests", within=5)
            assert tail["data"]["request_id"] == rid and "pod" not in tail  # B's own request is the first on its tail
