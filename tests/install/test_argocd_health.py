"""Argo CD health checks (deploy/argocd/health/<group>/<Kind>/health.lua) against their testdata,
in Argo CD's own resource_customizations layout: health_test.yaml lists input YAML -> expected
status and message. Run with a real Lua interpreter."""

from __future__ import annotations

from pathlib import Path
from types import ModuleType

import pytest
import yaml

from tests.install.argocd import HEALTH_DIR, health, lua_literal
from tests.install.paths import REPO
from tests.scripts import load_script

KINDS = ("AIGateway", "AIModel", "RoutingPolicy", "CostBudget")


def _cases() -> list[tuple[str, str, dict[str, str]]]:
    out = []
    for test_file in sorted(HEALTH_DIR.glob("*/*/health_test.yaml")):
        for case in yaml.safe_load(test_file.read_text())["tests"]:
            out.append((test_file.parent.name, case["inputPath"], case["healthStatus"]))
    return out


CASES = _cases()


def test_every_kind_has_a_script_and_each_state_a_fixture() -> None:
    assert sorted({k for k, _, _ in CASES}) == sorted(KINDS)
    for kind in KINDS:
        states = {want["status"] for k, _, want in CASES if k == kind}
        assert {"Healthy", "Progressing", "Degraded"} <= states, (kind, states)
        assert any("missing-refs" in path for k, path, _ in CASES if k == kind), kind


@pytest.mark.parametrize(("kind", "input_path", "want"), CASES, ids=[f"{k}-{Path(p).stem}" for k, p, _ in CASES])
def test_health(kind: str, input_path: str, want: dict[str, str], tmp_path: Path) -> None:
    obj = yaml.safe_load((HEALTH_DIR / "aimm.io" / kind / input_path).read_text())
    assert obj["kind"] == kind
    assert health(obj, tmp_path) == (want["status"], want.get("message", ""))


def test_lua_literal_round_trips_awkward_strings(tmp_path: Path) -> None:
    """Quotes, backslashes, newlines and non-ASCII reach the script unchanged."""
    message = 'say "hi"\\ \n\tdone \u00e9 ✓'
    obj = {
        "apiVersion": "aimm.io/v1alpha1",
        "kind": "RoutingPolicy",
        "metadata": {"name": "x", "generation": 1},
        "status": {
            "observedGeneration": 1,
            "conditions": [{"type": "Ready", "status": "False", "reason": "Invalid", "message": message}],
        },
    }
    assert health(obj, tmp_path) == ("Degraded", message)
    assert lua_literal([1, None, True]) == "{1, nil, true}"


def _generator() -> ModuleType:
    return load_script(REPO / "deploy" / "argocd" / "generate.py", "aimm_argocd_health")


def test_committed_scripts_are_the_generated_ones() -> None:
    """One template writes every kind's script: the committed files are exactly its output."""
    generated = _generator().scripts()
    assert sorted(generated) == sorted(HEALTH_DIR.glob("*/*/health.lua"))
    for path, text in generated.items():
        assert path.read_text() == text, f"{path} differs: run python -P deploy/argocd/generate.py"
