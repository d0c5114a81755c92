"""The Helm chart lints, renders, and its output validates strictly (kubeconform) against the JSON
schemas of the real API server used by these tests; the shipped manifests and examples are accepted
by that API server."""

from __future__ import annotations

import copy
import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.k8s_harness import ControlPlane
from tests.operator.conftest import REPO
from tests.operator.kubeapi import Api

CHART = REPO / "charts" / "ai-multimodel"
INT_OR_STRING = {"oneOf": [{"type": "string"}, {"type": "integer"}]}


def tool(cp: ControlPlane, name: str) -> str:
    path = cp.bin_dir / name
    assert path.exists(), f"{name} missing from {cp.bin_dir}: run `make envtest`"
    return str(path)


def run(*args: str) -> str:
    res = subprocess.run(args, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, f"{' '.join(args)}\n{res.stdout}\n{res.stderr}"
    return res.stdout


def _strict(defs: dict[str, Any]) -> dict[str, Any]:
    """Swagger definitions -> draft-4 JSON schema definitions, closed like kubeconform's strict ones."""
    out = copy.deepcopy(defs)
    out["io.k8s.apimachinery.pkg.util.intstr.IntOrString"] = INT_OR_STRING
    out["io.k8s.apimachinery.pkg.api.resource.Quantity"] = INT_OR_STRING

    def close(node: Any) -> None:
        if isinstance(node, dict):
            if node.get("type") == "object" and "properties" in node and "additionalProperties" not in node:
                node["additionalProperties"] = False
            for value in node.values():
                close(value)
        elif isinstance(node, list):
            for value in node:
                close(value)

    close(out)
    return out


def write_schemas(api: Api, out: Path) -> Path:
    """kubeconform schemas ({kind}-{group}-{version}.json) for every kind the API server serves."""
    swagger = api.request("GET", "/openapi/v2").json()
    defs = _strict(swagger["definitions"])
    (out / "_definitions.json").write_text(json.dumps({"definitions": defs}))
    for name, schema in swagger["definitions"].items():
        for gvk in schema.get("x-kubernetes-group-version-kind", []):
            group = gvk["group"].split(".")[0]
            suffix = f"-{group}-{gvk['version']}" if group else f"-{gvk['version']}"
            ref = {"$ref": f"_definitions.json#/definitions/{name}"}
            (out / f"{gvk['kind'].lower()}{suffix}.json").write_text(json.dumps(ref))
    return out


@pytest.fixture(scope="module")
def schemas(api: Api, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_schemas(api, tmp_path_factory.mktemp("schemas"))


def kubeconform(cp: ControlPlane, schemas: Path, manifests: str) -> str:
    res = subprocess.run(
        [
            tool(cp, "kubeconform"),
            "-strict",
            "-summary",
            "-ignore-missing-schemas",
            "-schema-location",
            f"{schemas}/{{{{ .ResourceKind }}}}{{{{ .KindSuffix }}}}.json",
            "-",
        ],
        input=manifests,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert res.returncode == 0, f"kubeconform:\n{res.stdout}\n{res.stderr}"
    return res.stdout


def test_helm_lint(control_plane: ControlPlane) -> None:
    out = run(tool(control_plane, "helm"), "lint", "--strict", str(CHART))
    assert "0 chart(s) failed" in out


@pytest.mark.parametrize("values", [[], ["--set", "watchNamespace=team-a"]], ids=["cluster", "namespaced"])
def test_helm_template_validates_strictly(control_plane: ControlPlane, schemas: Path, values: list[str]) -> None:
    rendered = run(
        tool(control_plane, "helm"), "template", "aimm", str(CHART), "-n", "aimm-system", "--include-crds", *values
    )
    docs = [d for d in yaml.safe_load_all(rendered) if d]
    kinds = sorted(d["kind"] for d in docs)
    expected_binding = "RoleBinding" if values else "ClusterRoleBinding"
    assert kinds == sorted(
        ["ServiceAccount", "ClusterRole", expected_binding, "Deployment", *["CustomResourceDefinition"] * 4]
        + ["ConfigMap"] * 4  # the Grafana dashboards (grafanaDashboards.enabled, on by default)
        + ["Service"]  # the operator's metrics (operator.metricsPort, 8080 by default)
    )
    summary = kubeconform(control_plane, schemas, rendered)
    assert "Invalid: 0, Errors: 0" in summary and "Skipped: 0" in summary, summary


def test_operator_service_monitor_selects_the_metrics_service(control_plane: ControlPlane) -> None:
    helm = tool(control_plane, "helm")
    sets = ["--set", "operator.serviceMonitor.enabled=true", "--set", "operator.serviceMonitor.labels.release=kps"]
    docs = [d for d in yaml.safe_load_all(run(helm, "template", "aimm", str(CHART), "-n", "aimm-system", *sets)) if d]
    monitor = next(d for d in docs if d["kind"] == "ServiceMonitor")
    service = next(d for d in docs if d["kind"] == "Service")
    deployment = next(d for d in docs if d["kind"] == "Deployment")
    assert monitor["metadata"]["labels"]["release"] == "kps"  # kube-prometheus-stack's selector
    assert monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    assert service["spec"]["selector"].items() <= deployment["spec"]["template"]["metadata"]["labels"].items()
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    assert {"name": "metrics", "containerPort": 8080, "protocol": "TCP"} in container["ports"]
    assert "--metrics-port=8080" in container["args"]
    off = run(helm, "template", "aimm", str(CHART), "-n", "aimm-system", *sets, "--set", "operator.metricsPort=0")
    assert not [d for d in yaml.safe_load_all(off) if d and d["kind"] in ("Service", "ServiceMonitor")]


def test_kubeconform_rejects_what_the_api_server_would(control_plane: ControlPlane, schemas: Path) -> None:
    bad = (
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: x}\nspec: {replicaz: 3, selector: {}, template: {}}\n"
    )
    res = subprocess.run(
        [
            tool(control_plane, "kubeconform"),
            "-strict",
            "-schema-location",
            f"{schemas}/{{{{ .ResourceKind }}}}{{{{ .KindSuffix }}}}.json",
            "-",
        ],
        input=bad,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert res.returncode == 1 and "replicaz" in res.stdout


def test_chart_crds_and_rbac_match_the_sources(control_plane: ControlPlane) -> None:
    for path in sorted((REPO / "crds").glob("*.yaml")):
        assert (CHART / "crds" / path.name).read_text() == path.read_text(), path.name
    rendered = run(tool(control_plane, "helm"), "template", "aimm", str(CHART), "-n", "aimm-system")
    chart_role = next(d for d in yaml.safe_load_all(rendered) if d and d["kind"] == "ClusterRole")
    shipped = next(
        d for d in yaml.safe_load_all((REPO / "deploy/operator/02-rbac.yaml").read_text()) if d["kind"] == "ClusterRole"
    )
    assert chart_role["rules"] == shipped["rules"]


def test_shipped_manifests_validate(control_plane: ControlPlane, schemas: Path) -> None:
    text = "\n---\n".join(p.read_text() for p in sorted((REPO / "deploy" / "operator").glob("*.yaml")))
    summary = kubeconform(control_plane, schemas, text)
    assert "Invalid: 0, Errors: 0" in summary


def test_examples_are_accepted_by_the_api_server(control_plane: ControlPlane, api: Api) -> None:
    api.create_namespace("t-examples")
    res = control_plane.kubectl("apply", "--dry-run=server", "-n", "t-examples", "-f", str(REPO / "examples" / "k8s"))
    assert res.returncode == 0, res.stderr
    assert res.stdout.count("(server dry run)") >= 4, res.stdout
