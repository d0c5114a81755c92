"""Generate the Grafana dashboards (JSON) from the panel table below.

    python -P deploy/grafana/generate.py        # writes deploy/grafana/*.json and the chart's copy

Every panel's PromQL is run against a real Prometheus scraping a loaded gateway by
tests/observability/test_prometheus_e2e.py; docs/observability.md describes each dashboard.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
CHART_DIR = REPO / "charts" / "ai-multimodel" / "dashboards"
DS = {"type": "prometheus", "uid": "${datasource}"}


@dataclass(frozen=True)
class Panel:
    title: str
    queries: tuple[tuple[str, str], ...]  # (PromQL, legend)
    kind: str = "timeseries"  # timeseries | stat | table | bargauge
    unit: str = "short"
    width: int = 12
    description: str = ""


@dataclass(frozen=True)
class Dashboard:
    uid: str
    title: str
    description: str
    panels: tuple[Panel, ...] = field(default_factory=tuple)


def q(expr: str, legend: str = "") -> tuple[str, str]:
    return (expr, legend)


def p95(metric: str, by: str = "model") -> str:
    return f"histogram_quantile(0.95, sum by ({by}, le) (rate({metric}_bucket[5m])))"


OVERVIEW = Dashboard(
    "aimm-overview",
    "AI gateway / Overview",
    "Traffic, errors, latency and spend of the aimm gateways at a glance.",
    (
        Panel("Requests per second", (q("sum(rate(ai_multimodel_client_requests_total[5m]))", "requests/s"),),
              "stat", "reqps", 6),
        Panel("Upstream error rate", (q("sum(rate(ai_multimodel_errors_total[5m])) / "
                                        "sum(rate(ai_multimodel_requests_total[5m]))", "errors"),),
              "stat", "percentunit", 6),
        Panel("p95 latency (client)", (q("histogram_quantile(0.95, sum by (le) "
                                         "(rate(ai_multimodel_client_request_duration_seconds_bucket[5m])))", "p95"),),
              "stat", "s", 6),
        Panel("Spend per hour", (q("sum(rate(ai_multimodel_cost_usd_total[1h])) * 3600", "USD/h"),),
              "stat", "currencyUSD", 6),
        Panel("Requests by model and status", (q("sum by (model, status) (rate(ai_multimodel_requests_total[5m]))",
                                                 "{{model}} {{status}}"),), unit="reqps"),
        Panel("Client requests by API and code", (q("sum by (api, code) "
                                                    "(rate(ai_multimodel_client_requests_total[5m]))",
                                                    "{{api}} {{code}}"),), unit="reqps"),
        Panel("In-flight requests", (q("sum(ai_multimodel_in_flight_requests)", "client"),
                                     q("sum by (model) (ai_multimodel_upstream_in_flight_requests)", "{{model}}"))),
        Panel("Model availability", (q("max by (model) (ai_multimodel_model_availability)", "{{model}}"),),
              "bargauge", "bool_on_off"),
    ),
)

PERFORMANCE = Dashboard(
    "aimm-performance",
    "AI gateway / Performance",
    "Where latency comes from: upstream duration, time to first token, streaming gaps, resilience.",
    (
        Panel("p95 upstream duration by model", (q(p95("ai_multimodel_request_duration_seconds"), "{{model}}"),),
              unit="s"),
        Panel("p50 upstream duration by model", (q("histogram_quantile(0.5, sum by (model, le) "
                                                   "(rate(ai_multimodel_request_duration_seconds_bucket[5m])))",
                                                   "{{model}}"),), unit="s"),
        Panel("p95 time to first token", (q(p95("ai_multimodel_time_to_first_token_seconds"), "{{model}}"),),
              unit="s"),
        Panel("p95 inter-chunk latency", (q(p95("ai_multimodel_inter_chunk_latency_seconds"), "{{model}}"),),
              unit="s"),
        Panel("Errors by model and type", (q("sum by (model, type) (rate(ai_multimodel_errors_total[5m]))",
                                             "{{model}} {{type}}"),), unit="reqps"),
        Panel("Circuit breaker state (0 closed, 1 half-open, 2 open)",
              (q("max by (model) (ai_multimodel_circuit_breaker_state)", "{{model}}"),)),
        Panel("Retries by model", (q("sum by (model) (rate(ai_multimodel_retries_total[5m]))", "{{model}}"),),
              unit="reqps", width=8),
        Panel("Fallbacks by route", (q("sum by (route) (rate(ai_multimodel_fallbacks_total[5m]))", "{{route}}"),),
              unit="reqps", width=8),
        Panel("Hedges by route", (q("sum by (route) (rate(ai_multimodel_hedges_total[5m]))", "{{route}}"),),
              unit="reqps", width=8),
    ),
)

BUSINESS = Dashboard(
    "aimm-business",
    "AI gateway / Business and cost",
    "Spend, tokens and budgets: who spends what, and whether a budget will run out.",
    (
        Panel("Spend per hour by model", (q("sum by (model) (rate(ai_multimodel_cost_usd_total[1h])) * 3600",
                                            "{{model}}"),), unit="currencyUSD"),
        Panel("Spend, last 24 hours", (q("sum by (model) (increase(ai_multimodel_cost_usd_total[24h]))",
                                         "{{model}}"),), "bargauge", "currencyUSD"),
        Panel("Tokens per second by direction", (q("sum(rate(ai_multimodel_input_tokens_total[5m]))", "input"),
                                                 q("sum(rate(ai_multimodel_output_tokens_total[5m]))", "output"))),
        Panel("Cost per 1k tokens by model", (q("1000 * sum by (model) (rate(ai_multimodel_cost_usd_total[1h])) / "
                                                "(sum by (model) (rate(ai_multimodel_input_tokens_total[1h])) + "
                                                "sum by (model) (rate(ai_multimodel_output_tokens_total[1h])))",
                                                "{{model}}"),), unit="currencyUSD"),
        Panel("Budget used", (q("max by (budget) (ai_multimodel_budget_used_ratio)", "{{budget}}"),),
              "bargauge", "percentunit"),
        Panel("Budget refusals by action", (q("sum by (budget, action) (rate(ai_multimodel_budget_refused_total[5m]))",
                                              "{{budget}} {{action}}"),), unit="reqps"),
        Panel("Cache hit ratio", (q('sum(rate(ai_multimodel_cache_requests_total{result="hit"}[5m])) / '
                                    'sum(rate(ai_multimodel_cache_requests_total{result=~"hit|miss"}[5m]))',
                                    "hit ratio"),), "stat", "percentunit"),
    ),
)

SECURITY = Dashboard(
    "aimm-security",
    "AI gateway / Security",
    "Refused requests: authentication, rate limits, guards, and config changes.",
    (
        Panel("Refused client requests by code", (q('sum by (code) (rate(ai_multimodel_client_requests_total'
                                                    '{code=~"4.."}[5m]))', "{{code}}"),), unit="reqps"),
        Panel("Authentication failures", (q("sum by (reason) (rate(ai_multimodel_auth_failures_total[5m]))",
                                            "{{reason}}"),), unit="reqps"),
        Panel("Rate-limited requests", (q("sum by (reason) (rate(ai_multimodel_rate_limited_total[5m]))",
                                          "{{reason}}"),), unit="reqps"),
        Panel("Guard blocks", (q("sum by (kind) (rate(ai_multimodel_guard_blocks_total[5m]))", "{{kind}}"),),
              unit="reqps"),
        Panel("Config reloads", (q("sum by (result) (increase(ai_multimodel_config_reloads_total[1h]))",
                                   "{{result}}"),), "bargauge"),
        Panel("Last config reload successful", (q("min(ai_multimodel_config_last_reload_successful)", "ok"),),
              "stat", "bool"),
    ),
)

DASHBOARDS = (OVERVIEW, PERFORMANCE, BUSINESS, SECURITY)


def _panel_json(panel: Panel, pid: int, x: int, y: int, height: int) -> dict[str, Any]:
    return {
        "id": pid,
        "type": panel.kind,
        "title": panel.title,
        "description": panel.description,
        "datasource": DS,
        "gridPos": {"h": height, "w": panel.width, "x": x, "y": y},
        "fieldConfig": {"defaults": {"unit": panel.unit}, "overrides": []},
        "options": {"legend": {"displayMode": "list", "placement": "bottom"}} if panel.kind == "timeseries" else {},
        "targets": [
            {"datasource": DS, "expr": expr, "legendFormat": legend, "refId": chr(ord("A") + i)}
            for i, (expr, legend) in enumerate(panel.queries)
        ],
    }


def dashboard_json(d: Dashboard) -> dict[str, Any]:
    panels, x, y = [], 0, 0
    for pid, panel in enumerate(d.panels, start=1):
        height = 4 if panel.kind == "stat" else 8
        if x + panel.width > 24:
            x, y = 0, y + 8
        panels.append(_panel_json(panel, pid, x, y, height))
        x += panel.width
    return {
        "uid": d.uid,
        "title": d.title,
        "description": d.description,
        "tags": ["aimm", "ai-gateway"],
        "timezone": "utc",
        "schemaVersion": 39,
        "version": 1,
        "editable": True,
        "refresh": "30s",
        "time": {"from": "now-6h", "to": "now"},
        "templating": {
            "list": [{"name": "datasource", "type": "datasource", "query": "prometheus", "label": "Prometheus"}]
        },
        "panels": panels,
    }


def rendered() -> dict[str, str]:
    """File name -> JSON text, for every dashboard."""
    return {f"{d.uid}.json": json.dumps(dashboard_json(d), indent=2) + "\n" for d in DASHBOARDS}


def main() -> int:
    CHART_DIR.mkdir(parents=True, exist_ok=True)
    for name, text in rendered().items():
        for folder in (HERE, CHART_DIR):
            (folder / name).write_text(text)
            print(folder / name)
    return 0


if __name__ == "__main__":
    sys.exit(main())
