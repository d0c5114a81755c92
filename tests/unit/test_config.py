from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from aimm_gateway.config import ConfigError, GatewayConfig, SecretRef, load_config, parse_config
from aimm_gateway.presets import PRESETS


def _err(data: object) -> str:
    with pytest.raises(ConfigError) as exc:
        parse_config(data)
    return str(exc.value)


def test_errors_name_the_field() -> None:
    assert "models[0].pricing.input_per_1k" in _err(
        {"models": [{"name": "a", "provider": "mock", "pricing": {"input_per_1k": -1}}]}
    )
    assert "models[0].provider: unknown provider 'nope'" in _err({"models": [{"name": "a", "provider": "nope"}]})
    assert "modelz: Extra inputs are not permitted" in _err({"modelz": []})
    assert "routes[0].targets[1].model: unknown model 'b'" in _err(
        {
            "models": [{"name": "a", "provider": "mock"}],
            "routes": [{"name": "r", "targets": [{"model": "a"}, {"model": "b"}]}],
        }
    )
    assert "duplicate name 'a'" in _err(
        {"models": [{"name": "a", "provider": "mock"}, {"name": "a", "provider": "mock"}]}
    )
    assert "weights must not all be zero" in _err(
        {
            "models": [{"name": "a", "provider": "mock"}],
            "routes": [{"name": "r", "targets": [{"model": "a", "weight": 0}]}],
        }
    )
    assert "set base_url" in _err({"models": [{"name": "a", "provider": "openai_compatible"}]})
    assert "server.default_model" in _err({"server": {"default_model": "x"}})


def test_secret_ref_needs_exactly_one_source(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        SecretRef(env="A", file="/b")
    monkeypatch.setenv("AIMM_T_SECRET", " s3cret \n")
    assert SecretRef(env="AIMM_T_SECRET").resolve() == "s3cret"
    f = tmp_path / "key"
    f.write_text("filekey\n")
    assert SecretRef(file=str(f)).resolve() == "filekey"
    assert SecretRef(file=str(tmp_path / "missing")).resolve() is None


def test_load_config_reports_yaml_and_io_errors(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("models: [")
    with pytest.raises(ConfigError, match="invalid YAML"):
        load_config(bad)
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path / "absent.yaml")


def test_demo_config_is_valid() -> None:
    config = load_config(Path(__file__).parents[2] / "examples" / "demo.yaml")
    assert {m.provider for m in config.models} >= {"mock", "openai", "anthropic"}
    assert config.server.default_model == "smart"


def test_schema_cli_lists_every_provider() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "aimm_gateway.cli", "gateway", "schema"],
        capture_output=True,
        text=True,
        check=True,
    )
    schema = json.loads(out.stdout)
    assert schema["title"] == "GatewayConfig"
    enum = schema["$defs"]["ModelConfig"]["properties"]["provider"]["enum"]
    assert set(enum) == set(PRESETS) and len(enum) >= 20


def test_defaults_match_the_product_docs() -> None:
    config = GatewayConfig()
    assert config.circuit_breaker.failure_threshold == 5
    assert config.circuit_breaker.timeout_s == 60
    assert config.retries.attempts == 3
    assert config.auth.enabled is True
