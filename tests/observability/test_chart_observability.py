"""The chart's observability parts, rendered by the real helm: the static PrometheusRule is the
operator's rule table (valid for promtool), and every dashboard ships as a ConfigMap labelled for
Grafana's dashboard sidecar, byte-identical to deploy/grafana."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import yaml

from aimm_operator.alerts import AlertParams, Selectors, rule_group
from tests.k8s_harness import find_bin_dir
from tests.observability.prombin import REPO, promtool

CHART = REPO / "charts" / "ai-multimodel"


def helm_template(*sets: str) -> list[dict]:
    args = [str(find_bin_dir() / "helm"), "template", "aimm", str(CHART), "--namespace", "ai"]
    for s in sets:
        args += ["--set", s]
    res = subprocess.run(args, capture_output=True, text=True, timeout=120, check=False)
    assert res.returncode == 0, res.stderr
    return [d for d in yaml.safe_load_all(res.stdout) if d]


def _squash(text: str) -> str:
    return re.sub(r"\{ ", "{", re.sub(r" \}", "}", text))


def test_static_prometheus_rule_is_the_operator_table(tmp_path: Path) -> None:
    docs = helm_template("prometheusRule.enabled=true", 'prometheusRule.selector=job="aimm"')
    (rule,) = [d for d in docs if d["kind"] == "PrometheusRule"]
    (tmp_path / "rules.yaml").write_text(yaml.safe_dump(rule["spec"]))
    check = promtool("check", "rules", str(tmp_path / "rules.yaml"))
    assert check.returncode == 0, check.stdout + check.stderr
    want = rule_group(
        "aimm.gateway",
        AlertParams(),
        Selectors(sel='job="aimm"', deploy='namespace="ai",deployment="main"', where="The gateway"),
    )
    got = rule["spec"]["groups"][0]
    assert [r["alert"] for r in got["rules"]] == [r["alert"] for r in want["rules"]]
    for g, w in zip(got["rules"], want["rules"], strict=True):
        assert _squash(g["expr"]) == w["expr"]
        assert g["annotations"] == w["annotations"] and g["for"] == w["for"]


def test_prometheus_rule_off_by_default() -> None:
    assert not [d for d in helm_template() if d["kind"] == "PrometheusRule"]


def test_dashboards_as_sidecar_configmaps() -> None:
    maps = [d for d in helm_template() if d["kind"] == "ConfigMap" and "dashboard" in d["metadata"]["name"]]
    shipped = {}
    for cm in maps:
        assert cm["metadata"]["labels"]["grafana_dashboard"] == "1"
        ((name, text),) = cm["data"].items()
        shipped[name] = text
    expected = {p.name: p.read_text() for p in (REPO / "deploy" / "grafana").glob("*.json")}
    assert set(shipped) == set(expected) and len(expected) == 4
    for name, text in shipped.items():
        assert json.loads(text) == json.loads(expected[name])
    assert not [d for d in helm_template("grafanaDashboards.enabled=false") if "dashboard" in d["metadata"]["name"]]
