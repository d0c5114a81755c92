"""Metrics: bounded label sets, pre-resolved series, exemplars in the OpenMetrics exposition."""

from __future__ import annotations

import random
import string

from opentelemetry.sdk.trace import TracerProvider
from prometheus_client import CollectorRegistry
from prometheus_client.openmetrics.parser import text_string_to_metric_families

from aimm_gateway.config import GatewayConfig
from aimm_gateway.errors import ModelNotFound
from aimm_gateway.metrics import OTHER, GatewayMetrics, ModelGauges, bounded
from aimm_gateway.metrics_families import GaugeFamily
from aimm_gateway.service import Gateway
from aimm_gateway.stages.base import Outcome
from aimm_gateway.stages.telemetry import TelemetryStage, label_for
from aimm_gateway.telemetry.tracing import Tracing
from tests.observability.helpers import context, runtime


def series_count(metrics: GatewayMetrics) -> int:
    return sum(len(family.samples) for family in metrics.registry.collect())


def random_name(rng: random.Random) -> str:
    return "".join(rng.choices(string.ascii_letters + string.digits + "-_./:", k=rng.randint(1, 40)))


async def test_a_thousand_made_up_model_names_add_no_series() -> None:
    metrics, rt, rng = GatewayMetrics(), runtime(), random.Random(7)

    async def request(name: str) -> None:
        stage = TelemetryStage(metrics, label_for(rt, name), None, None)
        ctx = context(rt, name)
        await stage.before(ctx)
        await stage.after(ctx, Outcome(ok=False, error=ModelNotFound("nope"), status=404))

    await request("first-unknown")
    before = series_count(metrics)
    for _ in range(1000):
        await request(random_name(rng))
    assert series_count(metrics) == before
    sample = metrics.client_requests.labels("openai", OTHER, "404")
    assert sample.value == 1001  # every request counted, all in the one `other` series


async def test_configured_names_keep_their_label() -> None:
    rt = runtime()
    assert label_for(rt, "gpt") == "gpt"
    assert label_for(rt, "smart") == "smart"
    assert label_for(rt, "gpt-unknown") == OTHER
    assert bounded(None, {"a"}) == OTHER


def test_odd_status_codes_and_reasons_are_bounded() -> None:
    metrics = GatewayMetrics()
    assert metrics.request_series("openai", "gpt", 418) is metrics.request_series("openai", "gpt", 599)
    metrics.count_rate_limited("requests")
    metrics.count_rate_limited("x" * 200)
    metrics.count_auth_failure("invalid")
    metrics.count_guard_block("pii")
    text = metrics.render().decode()
    assert 'ai_multimodel_rate_limited_total{reason="requests"} 1.0' in text
    assert 'ai_multimodel_rate_limited_total{reason="other"} 1.0' in text
    assert 'ai_multimodel_auth_failures_total{reason="invalid"} 1.0' in text


def test_model_gauges_follow_the_config() -> None:
    metrics = GatewayMetrics()
    metrics.refresh_models({"a": {"available": True, "circuit_state": "open", "in_flight": 3}})
    metrics.refresh_models({"b": {"available": False, "circuit_state": "closed", "in_flight": 0}})
    text = metrics.render().decode()
    assert 'ai_multimodel_model_availability{model="a"}' not in text  # removed by a reload: not alerted on
    assert 'ai_multimodel_model_availability{model="b"} 0.0' in text


def test_model_gauges_set_what_changed_and_touch_nothing_else() -> None:
    registry = CollectorRegistry()
    up, load = GaugeFamily("up", "", ["model"]), GaugeFamily("load", "", ["model"])
    registry.register(up)
    registry.register(load)
    gauges = ModelGauges((up, load))
    gauges.refresh({"a": (1, 3), "b": (0, 0)})

    def made_again(*_: object) -> None:
        raise AssertionError("a kept model's series made again")

    up.labels = load.labels = made_again  # type: ignore[method-assign]
    gauges.refresh({"a": (1, 4), "b": (0, 0)})  # one value changed: set on the series kept
    assert (
        registry.get_sample_value("load", {"model": "a"}) == 4 and registry.get_sample_value("up", {"model": "a"}) == 1
    )
    gauges.refresh({"a": (1, 4)})
    assert registry.get_sample_value("up", {"model": "b"}) is None  # removed: no longer reported
    assert registry.get_sample_value("load", {"model": "a"}) == 4


def test_reload_outcomes() -> None:
    metrics = GatewayMetrics()
    fresh = metrics.render().decode()  # both outcomes exist at 0, so increase() counts the first reload
    assert 'ai_multimodel_config_reloads_total{result="failure"} 0.0' in fresh
    assert 'ai_multimodel_config_reloads_total{result="success"} 0.0' in fresh
    metrics.count_reload(False)
    assert "ai_multimodel_config_last_reload_successful 0.0" in metrics.render().decode()
    metrics.count_reload(True)
    text = metrics.render().decode()
    assert "ai_multimodel_config_last_reload_successful 1.0" in text
    assert 'ai_multimodel_config_reloads_total{result="failure"} 1.0' in text


async def test_exemplars_carry_the_trace_id_in_openmetrics_only() -> None:
    metrics, rt = GatewayMetrics(), runtime()
    stage = TelemetryStage(metrics, "gpt", Tracing(TracerProvider()), None)
    ctx = context(rt, "gpt")
    await stage.before(ctx)
    trace_id = ctx.scratch["telemetry.trace"].trace_id
    await stage.after(ctx, Outcome(ok=True, model="gpt", provider="mock"))

    body, content_type = metrics.exposition("application/openmetrics-text; version=1.0.0")
    assert content_type.startswith("application/openmetrics-text")
    exemplars = [
        s.exemplar
        for family in text_string_to_metric_families(body.decode())
        for s in family.samples
        if s.exemplar is not None
    ]
    assert [e.labels["trace_id"] for e in exemplars] == [trace_id]
    plain, plain_type = metrics.exposition("text/plain")
    assert plain_type.startswith("text/plain") and trace_id.encode() not in plain


def test_every_metric_and_alert_is_documented() -> None:
    from aimm_operator.alerts import RULES
    from tests.observability.prombin import REPO

    doc = (REPO / "docs" / "observability.md").read_text()
    metrics = GatewayMetrics()
    names = {m.name for m in metrics.registry.collect()}
    missing = [n for n in names if f"`{n}" not in doc and f"`{n}_total`" not in doc]
    assert not missing, f"undocumented metrics: {missing}"
    assert [r.alert for r in RULES if f"`{r.alert}`" not in doc] == []
    for rule in RULES:
        assert rule.runbook in doc.replace("`", ""), f"{rule.alert}: the doc's runbook line differs from the rule's"


def test_a_gateway_counts_each_reload_once() -> None:
    gateway = Gateway(GatewayConfig.model_validate({"models": [{"name": "m", "provider": "mock"}]}))
    gateway._count_reload(False)  # what the config watcher calls after refusing a file
    text = gateway.metrics.render().decode()
    gateway.security.audit.close()
    assert 'ai_multimodel_config_reloads_total{result="failure"} 1.0' in text
