"""The chart's values and templates, without an API server: `helm lint --strict`, the strict
values schema (a misspelt key fails the install instead of being ignored), the optional
AIGateway from values checked against the CRD's own schema, and the `helm test` hook.

Rendering against the real API server's schemas (kubeconform) and `helm install` + `helm test`
run in tests/operator/test_helm_chart.py and tests/operator/test_chart_install.py."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.install.paths import CHART, REPO
from tests.k8s_harness import find_bin_dir


def helm(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    res = subprocess.run([str(find_bin_dir() / "helm"), *args], capture_output=True, text=True, timeout=120)
    if check:
        assert res.returncode == 0, f"helm {' '.join(args)}\n{res.stdout}\n{res.stderr}"
    return res


def render(*values: str) -> list[dict[str, Any]]:
    out = helm("template", "aimm", str(CHART), "-n", "aimm-system", *values).stdout
    return [d for d in yaml.safe_load_all(out) if d]


GATEWAY_SPEC = {
    "replicas": {"min": 2, "max": 4},
    "service": {"port": 8000},
    "auth": {"apiKeySecretRef": {"name": "gateway-auth", "key": "api-key"}},
}


def test_lint_strict_with_and_without_the_gateway(tmp_path: Path) -> None:
    values = tmp_path / "values.yaml"
    values.write_text(yaml.safe_dump({"gateway": {"create": True, "spec": GATEWAY_SPEC}}))
    for extra in ([], ["-f", str(values)]):
        out = helm("lint", "--strict", str(CHART), *extra).stdout
        assert "0 chart(s) failed" in out


@pytest.mark.parametrize(
    ("args", "complaint"),
    [
        (["--set", "nodeSelektor.x=y"], "nodeSelektor"),
        (["--set", "image.pullPolicy=Sometimes"], "pullPolicy"),
        (["--set", "operator.statsIntervall=5"], "statsIntervall"),
        (["--set", "gateway.spec.replicas.minimum=3"], "minimum"),
        (["--set", "gateway.spec.service.type=Ingress"], "type"),
        (["--set", "gateway.spec.nodeSelektor.disk=ssd"], "nodeSelektor"),
    ],
    ids=["top-level-typo", "bad-enum", "nested-typo", "gateway-spec-typo", "gateway-spec-enum", "placement-typo"],
)
def test_schema_rejects_unknown_and_invalid_values(args: list[str], complaint: str) -> None:
    res = helm("template", "aimm", str(CHART), *args, check=False)
    assert res.returncode != 0 and "values don't meet the specifications of the schema" in res.stderr, res.stderr
    assert complaint in res.stderr


def test_gateway_spec_schema_is_the_crds() -> None:
    res = subprocess.run(
        [str(REPO / ".venv/bin/python"), "-P", "hack/chart_schema.py", "--check"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert res.returncode == 0, res.stderr


def test_no_gateway_by_default() -> None:
    kinds = sorted(d["kind"] for d in render() if d["kind"] != "ConfigMap")  # ConfigMaps: Grafana dashboards
    # Service: the operator's own metrics (operator.metricsPort), not a gateway's
    assert kinds == ["ClusterRole", "ClusterRoleBinding", "Deployment", "Service", "ServiceAccount"]


def test_gateway_from_values_with_the_charts_image_and_a_test_hook() -> None:
    docs = render("--set", "gateway.create=true", "--set-json", f"gateway.spec={json.dumps(GATEWAY_SPEC)}")
    (gw,) = [d for d in docs if d["kind"] == "AIGateway"]
    assert gw["metadata"] == {**gw["metadata"], "name": "main", "namespace": "aimm-system"}
    assert gw["spec"] == {**GATEWAY_SPEC, "image": "ghcr.io/aimm/ai-multimodel:0.1.0"}
    (pod,) = [d for d in docs if d["kind"] == "Pod"]
    assert pod["metadata"]["annotations"]["helm.sh/hook"] == "test"
    container = pod["spec"]["containers"][0]
    assert container["command"][:2] == ["python", "-c"]
    assert container["command"][2] == (CHART / "files" / "gateway_test.py").read_text()
    env = {e["name"]: e for e in container["env"]}
    assert env["AIMM_URL"]["value"] == "http://main.aimm-system.svc:8000"
    assert env["AIMM_API_KEY"]["valueFrom"]["secretKeyRef"] == GATEWAY_SPEC["auth"]["apiKeySecretRef"]
    own = render("--set", "gateway.create=true", "--set", "gateway.spec.image=registry.local/aimm:dev")
    assert next(d for d in own if d["kind"] == "AIGateway")["spec"]["image"] == "registry.local/aimm:dev"
    assert not [
        d for d in render("--set", "gateway.create=true", "--set", "gateway.test.enabled=false") if d["kind"] == "Pod"
    ]


def test_operator_placement_passes_through(tmp_path: Path) -> None:
    values = {
        "nodeSelector": {"pool": "system"},
        "tolerations": [{"key": "dedicated", "operator": "Equal", "value": "system", "effect": "NoSchedule"}],
        "topologySpreadConstraints": [
            {"maxSkew": 1, "topologyKey": "topology.kubernetes.io/zone", "whenUnsatisfiable": "ScheduleAnyway"}
        ],
        "priorityClassName": "system-cluster-critical",
        "imagePullSecrets": [{"name": "regcred"}],
        "podAnnotations": {"a": "b"},
        "serviceAccount": {"annotations": {"iam": "role"}},
    }
    (tmp_path / "values.yaml").write_text(yaml.safe_dump(values))
    docs = render("-f", str(tmp_path / "values.yaml"))
    pod = next(d for d in docs if d["kind"] == "Deployment")["spec"]["template"]
    for key in ("nodeSelector", "tolerations", "topologySpreadConstraints", "priorityClassName", "imagePullSecrets"):
        assert pod["spec"][key] == values[key], key
    assert pod["metadata"]["annotations"] == {"a": "b"}
    sa = next(d for d in docs if d["kind"] == "ServiceAccount")
    assert sa["metadata"]["annotations"] == {"iam": "role"}


def test_flux_helmrelease_values_are_valid_chart_values(tmp_path: Path) -> None:
    release = next(
        d for d in yaml.safe_load_all((REPO / "deploy/flux/helmrelease.yaml").read_text()) if d["kind"] == "HelmRelease"
    )
    values = tmp_path / "values.yaml"
    values.write_text(yaml.safe_dump(release["spec"]["values"]))
    docs = render("-f", str(values))
    assert any(d["kind"] == "AIGateway" for d in docs)
