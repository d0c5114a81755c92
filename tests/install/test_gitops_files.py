"""The GitOps files: the argocd-cm patch carries exactly the tested health scripts under Argo
CD's keys, and the Flux examples health-check objects that exist in what they deploy."""

from __future__ import annotations

import json
import subprocess

import yaml

from tests.install.argocd import HEALTH_DIR
from tests.install.paths import REPO


def test_argocd_cm_patch_holds_every_health_script() -> None:
    res = subprocess.run(["bash", "hack/argocd-cm.sh"], cwd=REPO, capture_output=True, text=True, timeout=30)
    assert res.returncode == 0, res.stderr
    data = json.loads(res.stdout)["data"]
    scripts = sorted(HEALTH_DIR.glob("*/*/health.lua"))
    assert len(scripts) == 4
    assert data == {
        f"resource.customizations.health.{p.parent.parent.name}_{p.parent.name}": p.read_text() for p in scripts
    }


def test_flux_health_checks_name_objects_that_are_deployed() -> None:
    docs = [d for d in yaml.safe_load_all((REPO / "deploy/flux/kustomization.yaml").read_text()) if d]
    ks = next(d for d in docs if d["kind"] == "Kustomization")
    examples = [
        d for p in sorted((REPO / ks["spec"]["path"]).glob("*.yaml")) for d in yaml.safe_load_all(p.read_text()) if d
    ]
    deployed = {(d["kind"], d["metadata"]["name"]) for d in examples}
    release = next(
        d for d in yaml.safe_load_all((REPO / "deploy/flux/helmrelease.yaml").read_text()) if d["kind"] == "HelmRelease"
    )
    for check in ks["spec"]["healthChecks"]:
        if check["kind"] == "HelmRelease":
            assert (check["name"], check["namespace"]) == (
                release["metadata"]["name"],
                release["metadata"]["namespace"],
            )
        else:
            assert check["apiVersion"] == "aimm.io/v1alpha1"
            assert (check["kind"], check["name"]) in deployed, check
            assert check["namespace"] == ks["spec"]["targetNamespace"]
