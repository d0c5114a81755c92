"""kstatus (sigs.k8s.io/cli-utils' status.Compute, as Flux's health checks use it) over the
Argo CD testdata objects, whose statuses mirror what operator/status.py writes. These cover the
states the live test (tests/operator/test_gitops_health.py) can't reach on a real API server:
a spec the operator can't reconcile (Stalled), a stuck rollout, a generation not yet observed.

Unresolved references are left to the live test: there the operator itself writes the status.
"""

from __future__ import annotations

import json
import subprocess

import pytest
import yaml

from tests.install.argocd import HEALTH_DIR
from tests.install.gotools import gotool

EXPECTED = {
    ("AIGateway", "healthy"): "Current",
    ("AIGateway", "progressing"): "InProgress",  # Reconciling=True
    ("AIGateway", "not-observed"): "InProgress",  # observedGeneration < generation
    ("AIGateway", "degraded"): "Failed",  # Stalled=True (progress deadline exceeded)
    ("AIModel", "healthy"): "Current",
    # kstatus reads Ready=False as "not yet": a model no AIGateway selects keeps a Flux
    # Kustomization waiting (select it, or leave it out of health-checked Kustomizations).
    ("AIModel", "not-selected"): "InProgress",
    ("AIModel", "progressing"): "InProgress",
    ("AIModel", "missing-refs"): "Failed",  # Stalled=True
    ("RoutingPolicy", "healthy"): "Current",
    ("RoutingPolicy", "progressing"): "InProgress",
    ("RoutingPolicy", "degraded"): "Failed",  # Stalled=True (invalid spec)
    ("CostBudget", "healthy"): "Current",
}


def kstatus_all(objs: list[dict]) -> list[dict[str, str]]:
    res = subprocess.run(
        [gotool("kstatuscheck")],
        input=yaml.safe_dump_all(objs),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert res.returncode == 0, res.stderr
    return [json.loads(line) for line in res.stdout.splitlines()]


def test_kstatus_of_each_kind_in_each_state() -> None:
    keys = sorted(EXPECTED)
    objs = [yaml.safe_load((HEALTH_DIR / "aimm.io" / k / "testdata" / f"{s}.yaml").read_text()) for k, s in keys]
    got = kstatus_all(objs)
    assert [(g["kind"], g["name"]) for g in got] == keys
    wrong = {key: (g["status"], g["message"]) for key, g in zip(keys, got, strict=True) if g["status"] != EXPECTED[key]}
    assert not wrong, wrong


@pytest.mark.parametrize("kind", ["AIGateway", "AIModel", "RoutingPolicy", "CostBudget"])
def test_every_kind_has_current_in_progress_and_failed_or_live_coverage(kind: str) -> None:
    states = {v for (k, _), v in EXPECTED.items() if k == kind}
    assert "Current" in states
    if kind != "CostBudget":  # a budget's spec errors are refused at admission (CEL); see the live test
        assert {"InProgress", "Failed"} <= states, (kind, states)
