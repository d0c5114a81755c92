"""The gateway's alert rules as data: one table, rendered into the operator's PrometheusRule, the
chart's static copy and the rule files the promtool and real-Prometheus tests load.

Expressions are templates over two selectors, so the same rule serves every renderer:
`{sel}` matches the gateway's own series (`namespace="ns",service="name"` for the operator,
empty for a single-gateway Prometheus) and `{deploy}` matches the gateway Deployment in
kube-state-metrics series. docs/observability.md lists every rule with its runbook line.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from typing import Any

RUNBOOK = "https://github.com/aimm/ai-multimodel/blob/main/docs/observability.md#"  # the chart's home


@dataclass(frozen=True)
class AlertParams:
    """Thresholds and windows; the defaults are the AIGateway CRD's (spec.monitoring.alerts)."""

    cost_usd_per_hour: float = 10.0
    error_rate_percent: float = 5.0
    p95_latency_seconds: float = 10.0
    unavailable_minutes: int = 5
    budget_percent: int = 80
    projection_hours: int = 24
    min_replicas: int = 5
    # Windows: production values; the end-to-end test shortens them to fire within seconds.
    rate_window: str = "5m"
    error_for: str = "5m"
    latency_for: str = "10m"
    short_for: str = "1m"
    cost_for: str = "15m"
    reload_window: str = "15m"

    def with_overrides(self, **changes: Any) -> AlertParams:
        known = {f.name for f in fields(self)}
        return replace(self, **{k: v for k, v in changes.items() if k in known})


@dataclass(frozen=True)
class Selectors:
    sel: str = ""  # label matchers for the gateway's series, without braces
    deploy: str = 'deployment="ai-multimodel"'  # matchers for kube_deployment_* series
    where: str = "this gateway"  # how descriptions name the gateway


@dataclass(frozen=True)
class Rule:
    alert: str
    expr: str  # format template: {sel} {deploy} and AlertParams fields
    for_: str  # a duration, or the name of an AlertParams field in braces
    severity: str
    summary: str
    description: str
    runbook: str  # one line: what to check first

    def render(self, p: AlertParams, s: Selectors) -> dict[str, Any]:
        values = {f.name: _fmt(getattr(p, f.name)) for f in fields(p)}
        values.update(sel=s.sel, sel_and=f"{s.sel}," if s.sel else "", deploy=s.deploy, where=s.where)
        values.update(ratio=_fmt(p.error_rate_percent / 100))
        values.update(budget_ratio=_fmt(p.budget_percent / 100), projection_s=str(p.projection_hours * 3600))
        return {
            "alert": self.alert,
            "expr": self.expr.format(**values),
            "for": self.for_.format(**values),
            "labels": {"severity": self.severity},
            "annotations": {
                "summary": self.summary.format(**values),
                "description": self.description.format(**values),
                "runbook_url": RUNBOOK + self.alert.lower(),
            },
        }


def _fmt(value: object) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


# Every string goes through one str.format (Rule.render): `{{` comes out as `{`, so a Prometheus
# template `{{ $labels.model }}` is written `{{{{ $labels.model }}}}` and a selector `{{{sel}}}`.
RULES: tuple[Rule, ...] = (
    Rule(
        "HighAICosts",
        "sum(rate(ai_multimodel_cost_usd_total{{{sel}}}[1h])) * 3600 > {cost_usd_per_hour}",
        "{cost_for}",
        "warning",
        "AI spend above ${cost_usd_per_hour}/hour",
        '{where}: spend over the last hour runs at {{{{ $value | printf "%.2f" }}}} USD/hour.',
        "Find the model and key behind the spend on the Business/Cost dashboard; cap it with a CostBudget.",
    ),
    Rule(
        "AIMMHighErrorRate",
        "sum by (model) (rate(ai_multimodel_errors_total{{{sel}}}[{rate_window}]))"
        " / sum by (model) (rate(ai_multimodel_requests_total{{{sel}}}[{rate_window}])) > {ratio}",
        "{error_for}",
        "warning",
        "Model {{{{ $labels.model }}}} error rate above {error_rate_percent}%",
        "{where}: {{{{ $value | humanizePercentage }}}} of upstream attempts to {{{{ $labels.model }}}} fail.",
        "Check ai_multimodel_errors_total by type: rate_limited means upstream quota, timeout/connection the provider.",
    ),
    Rule(
        "AIMMHighLatency",
        "histogram_quantile(0.95, sum by (model, le) "
        "(rate(ai_multimodel_request_duration_seconds_bucket{{{sel}}}[{rate_window}]))) > {p95_latency_seconds}",
        "{latency_for}",
        "warning",
        "Model {{{{ $labels.model }}}} p95 latency above {p95_latency_seconds}s",
        "{where}: p95 of {{{{ $labels.model }}}} is {{{{ $value | humanizeDuration }}}}.",
        "Compare time to first token with total duration on the Performance dashboard; consider hedging.",
    ),
    Rule(
        "AIMMCircuitOpen",
        "max by (model) (ai_multimodel_circuit_breaker_state{{{sel}}}) == 2",
        "{short_for}",
        "warning",
        "Circuit breaker of {{{{ $labels.model }}}} is open",
        "{where}: the breaker of {{{{ $labels.model }}}} opened after repeated failures; traffic goes elsewhere.",
        "Read the model's last errors (/admin/models, ai_multimodel_errors_total); it half-opens by itself.",
    ),
    Rule(
        "AIMMModelUnavailable",
        "max by (model) (ai_multimodel_model_availability{{{sel}}}) == 0",
        "{unavailable_minutes}m",
        "critical",
        "Model {{{{ $labels.model }}}} unavailable",
        "{where}: {{{{ $labels.model }}}} has had no usable upstream for {unavailable_minutes} minutes.",
        "Check the model is enabled, its key Secret exists, and its provider is up.",
    ),
    Rule(
        "AIMMGatewayDown",
        "absent(up{{{sel}}} == 1)",
        "{error_for}",
        "critical",
        "No gateway pod is up",
        "{where}: Prometheus cannot scrape any gateway pod.",
        "Check the pods and the scrape target (ServiceMonitor, /metrics on the http port).",
    ),
    Rule(
        "AIMMBudgetWarning",
        "max by (budget) (ai_multimodel_budget_used_ratio{{{sel}}}) >= {budget_ratio}",
        "{short_for}",
        "warning",
        "Budget {{{{ $labels.budget }}}} at {budget_percent}% or more",
        "{where}: CostBudget {{{{ $labels.budget }}}} has used {{{{ $value | humanizePercentage }}}} of its limit.",
        "Look at the budget's forecast (kubectl get costbudgets); raise the limit or downgrade models.",
    ),
    Rule(
        "AIMMBudgetExhausted",
        "max by (budget) (ai_multimodel_budget_used_ratio{{{sel}}}) >= 1",
        "0m",
        "critical",
        "Budget {{{{ $labels.budget }}}} exhausted",
        "{where}: CostBudget {{{{ $labels.budget }}}} is spent; its action (alert, block, downgrade) applies.",
        "Decide with the budget owner: raise the limit, or accept blocked/downgraded requests until the period ends.",
    ),
    Rule(
        "AIMMBudgetProjectedOverspend",
        "predict_linear(max by (budget) (ai_multimodel_budget_used_ratio{{{sel}}})[6h:5m], {projection_s}) > 1"
        " and max by (budget) (ai_multimodel_budget_used_ratio{{{sel}}}) < 1",
        "{cost_for}",
        "warning",
        "Budget {{{{ $labels.budget }}}} will run out within {projection_hours}h",
        "{where}: at the pace of the last 6 hours, CostBudget {{{{ $labels.budget }}}} is spent within "
        "{projection_hours} hours.",
        "Find what changed in spend (Business/Cost dashboard) before the budget blocks or downgrades.",
    ),
    Rule(
        "AIMMGatewayReplicasBelowMinimum",
        "max(kube_deployment_status_replicas_available{{{deploy}}}) < {min_replicas}",
        "{error_for}",
        "warning",
        "Fewer than {min_replicas} gateway replicas available",
        "{where}: {{{{ $value }}}} replicas available, below the minimum of {min_replicas}.",
        "kubectl describe the Deployment's pods: scheduling, image pulls, failing readiness (no usable model).",
    ),
    Rule(
        "AIMMConfigReloadFailing",
        "max(ai_multimodel_config_last_reload_successful{{{sel}}}) == 0"
        ' or sum(increase(ai_multimodel_config_reloads_total{{{sel_and}result="failure"}}[{reload_window}])) > 0',
        "{short_for}",
        "warning",
        "Gateway config reload failing",
        "{where}: the gateway rejected its new config and keeps serving the previous one.",
        "Read the gateway log for the validation error; the AIGateway's Ready condition names the bad resource.",
    ),
)


def render_rules(params: AlertParams, selectors: Selectors) -> list[dict[str, Any]]:
    return [rule.render(params, selectors) for rule in RULES]


def rule_group(name: str, params: AlertParams, selectors: Selectors, interval: str | None = None) -> dict[str, Any]:
    group: dict[str, Any] = {"name": name, "rules": render_rules(params, selectors)}
    if interval is not None:
        group["interval"] = interval
    return group


# -- the chart's static copy (for clusters whose gateways the operator does not manage) -------

CHART_PATH = "charts/ai-multimodel/templates/prometheusrule.yaml"
_CHART_SEL = "@SEL@"
_CHART_DEPLOY = "@DEPLOY@"
_CHART_HEADER = """\
# Generated from operator/alerts.py (python -P -m aimm_operator.alerts): do not edit by hand.
# The same rules the operator renders for each AIGateway, with the default thresholds; for other
# thresholds set spec.monitoring.alerts on the AIGateway and let the operator render them.
{{- if .Values.prometheusRule.enabled }}
apiVersion: monitoring.coreos.com/v1
kind: PrometheusRule
metadata:
  name: {{ include "aimm.fullname" . }}-gateway
  labels:
    {{- include "aimm.labels" . | nindent 4 }}
    {{- with .Values.prometheusRule.labels }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
spec:
"""


def chart_template() -> str:
    """The Helm template: Prometheus' own `{{ }}` escaped, selectors taken from the values."""
    import yaml

    selectors = Selectors(sel=_CHART_SEL, deploy=_CHART_DEPLOY, where="The gateway")
    body = yaml.safe_dump(
        {"groups": [rule_group("aimm.gateway", AlertParams(), selectors)]}, sort_keys=False, width=1000
    )
    body = body.replace("{{", "\x00").replace("}}", "\x01")
    body = body.replace("\x00", '{{ "{{" }}').replace("\x01", '{{ "}}" }}')
    # A space after PromQL's `{`: Helm would read `{{{` as the start of an action.
    body = body.replace("{" + _CHART_SEL + ",", "{ {{ with .Values.prometheusRule.selector }}{{ . }},{{ end }}")
    body = body.replace("{" + _CHART_SEL + "}", "{ {{ .Values.prometheusRule.selector }} }")
    body = body.replace(
        "{" + _CHART_DEPLOY + "}",
        '{ namespace="{{ .Values.prometheusRule.gatewayNamespace | default .Release.Namespace }}",'
        'deployment="{{ .Values.prometheusRule.gatewayDeployment }}" }',
    )
    indented = "".join(f"  {line}\n" for line in body.splitlines())
    return _CHART_HEADER + indented + "{{- end }}\n"


def main(argv: list[str] | None = None) -> int:
    import sys
    from pathlib import Path

    out = Path((argv if argv is not None else sys.argv[1:] or [CHART_PATH])[0])
    out.write_text(chart_template())
    print(out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
