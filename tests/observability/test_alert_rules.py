"""Alert rules as code: every rule the operator renders has promtool unit tests with synthetic
series (alerts_test.yaml); the chart's static copy is the same table, and is valid for promtool."""

from __future__ import annotations

import shutil
from pathlib import Path

import yaml

from aimm_operator import alerts, render
from aimm_operator.objects import Snapshot
from tests.observability.prombin import REPO, promtool
from tests.unit.operator_fixtures import body, gw, snapshot

HERE = Path(__file__).parent


def operator_rules(ns: str = "ai", name: str = "main") -> dict:
    """The PrometheusRule the operator renders for AIGateway ns/name (default thresholds)."""
    g = Snapshot.from_bodies(ns, [body("AIGateway", name, {}, ns=ns)], [], [], []).gateways[0]
    return render.prometheus_rule(g)


def test_every_rule_has_promtool_unit_tests(tmp_path: Path) -> None:
    rule = operator_rules()
    (tmp_path / "rules.yaml").write_text(yaml.safe_dump(rule["spec"], sort_keys=False))
    shutil.copy(HERE / "alerts_test.yaml", tmp_path / "alerts_test.yaml")

    check = promtool("check", "rules", str(tmp_path / "rules.yaml"))
    assert check.returncode == 0, check.stdout + check.stderr
    res = promtool("test", "rules", "alerts_test.yaml", cwd=tmp_path)
    assert res.returncode == 0, res.stdout + res.stderr

    tested = {t["alertname"] for case in yaml.safe_load((HERE / "alerts_test.yaml").read_text())["tests"]
              for t in case["alert_rule_test"] if t.get("exp_alerts")}  # fmt: skip
    assert tested == {r.alert for r in alerts.RULES}, "every rule needs a test case where it fires"


def test_promtool_catches_a_wrong_expectation(tmp_path: Path) -> None:
    """The harness can fail: a test expecting the wrong threshold is reported."""
    rule = operator_rules()
    (tmp_path / "rules.yaml").write_text(yaml.safe_dump(rule["spec"], sort_keys=False))
    broken = (HERE / "alerts_test.yaml").read_text().replace("error rate above 5%", "error rate above 7%")
    (tmp_path / "alerts_test.yaml").write_text(broken)
    res = promtool("test", "rules", "alerts_test.yaml", cwd=tmp_path)
    assert res.returncode != 0 and "AIMMHighErrorRate" in res.stdout + res.stderr


def test_thresholds_come_from_the_aigateway() -> None:
    g = snapshot(
        gateways=[gw("main", monitoring={"alerts": {"errorRatePercent": 2, "costUsdPerHour": 50}}, replicas={"min": 7})]
    ).gateways[0]
    rules = {r["alert"]: r for r in render.prometheus_rule(g)["spec"]["groups"][0]["rules"]}
    assert rules["AIMMHighErrorRate"]["expr"].endswith("> 0.02")
    assert rules["HighAICosts"]["expr"].endswith("* 3600 > 50")
    assert rules["AIMMGatewayReplicasBelowMinimum"]["expr"] == (
        'max(kube_deployment_status_replicas_available{namespace="ns",deployment="main"}) < 7'
    )


def test_chart_copy_is_generated_from_the_table() -> None:
    committed = (REPO / alerts.CHART_PATH).read_text()
    assert committed == alerts.chart_template(), "regenerate: python -P -m aimm_operator.alerts"
