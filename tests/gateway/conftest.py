"""Fixtures: real mock upstreams and a real gateway, each served over HTTP on loopback."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from aimm_gateway.app import create_app
from aimm_gateway.mock.faults import FaultSettings
from aimm_gateway.mock.server import create_mock_app
from aimm_gateway.service import Gateway
from tests.servers import run_asgi_app

API_KEY = "sk-test-key"
ADMIN_TOKEN = "admin-test-token"


@dataclass
class Upstream:
    url: str
    fmt: str

    def set_faults(self, **faults: Any) -> None:
        httpx.post(f"{self.url}/_mock/faults", json=faults).raise_for_status()

    def stats(self) -> dict[str, Any]:
        data: dict[str, Any] = httpx.get(f"{self.url}/_mock/stats").json()
        return data


@dataclass
class RunningGateway:
    url: str
    gateway: Gateway
    config_path: Path

    @property
    def v1(self) -> str:
        return f"{self.url}/v1"

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, headers={"authorization": f"Bearer {API_KEY}"}, timeout=30)


@pytest.fixture
def upstreams() -> Iterator[Callable[..., Upstream]]:
    with ExitStack() as stack:

        def start(fmt: str, **faults: Any) -> Upstream:
            app = create_mock_app(fmt, FaultSettings(**faults))
            return Upstream(stack.enter_context(run_asgi_app(app)), fmt)

        yield start


@pytest.fixture
def openai_upstream(upstreams: Callable[..., Upstream]) -> Upstream:
    return upstreams("openai")


@pytest.fixture
def anthropic_upstream(upstreams: Callable[..., Upstream]) -> Upstream:
    return upstreams("anthropic")


def base_config(models: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    config: dict[str, Any] = {
        "auth": {"api_keys": [{"name": "tests", "key": {"env": "AIMM_TEST_API_KEY"}}]},
        "admin": {"token": {"env": "AIMM_TEST_ADMIN_TOKEN"}},
        "models": models,
    }
    config.update(extra)
    return config


def upstream_model(name: str, upstream: Upstream, **extra: Any) -> dict[str, Any]:
    provider = "openai_compatible" if upstream.fmt == "openai" else "anthropic"
    base = f"{upstream.url}/v1" if upstream.fmt == "openai" else upstream.url
    model: dict[str, Any] = {
        "name": name,
        "provider": provider,
        "base_url": base,
        "api_key": {"env": "AIMM_TEST_UPSTREAM_KEY"},
        "pricing": {"input_per_1k": "0.001", "output_per_1k": "0.002"},
        "capabilities": ["chat", "streaming", "tools", "vision", "json", "embeddings"],
    }
    model.update(extra)
    return model


@pytest.fixture(autouse=True)
def _secrets_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIMM_TEST_API_KEY", API_KEY)
    monkeypatch.setenv("AIMM_TEST_ADMIN_TOKEN", ADMIN_TOKEN)
    monkeypatch.setenv("AIMM_TEST_UPSTREAM_KEY", "upstream-secret-key")


@pytest.fixture
def start_gateway(tmp_path: Path) -> Iterator[Callable[[dict[str, Any]], RunningGateway]]:
    with ExitStack() as stack:

        def start(config: dict[str, Any]) -> RunningGateway:
            path = tmp_path / "gateway.yaml"
            path.write_text(yaml.safe_dump(config, sort_keys=False))
            gateway = Gateway.from_file(path)
            url = stack.enter_context(run_asgi_app(create_app(gateway)))
            return RunningGateway(url, gateway, path)

        yield start
