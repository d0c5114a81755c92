"""Tallies fold into their series exactly what prometheus_client's own `inc`/`observe` would have
left there (to the bit), on every scrape, exemplars included; and a scrape of a real gateway right
after N requests counts exactly N."""

from __future__ import annotations

import random
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.openmetrics.exposition import generate_latest as generate_openmetrics
from prometheus_client.openmetrics.parser import text_string_to_metric_families as openmetrics_families

from aimm_gateway.metrics import GatewayMetrics
from aimm_gateway.metrics_tally import CounterTally, Folds, GaugeTally, HistogramTally
from tests.gateway.conftest import Upstream, base_config, upstream_model
from tests.observability.test_metrics_http import samples, value

BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5)


def _series(registry: CollectorRegistry) -> tuple[Counter, Histogram, Gauge]:
    counter = Counter("c", "a counter", ("k",), registry=registry)
    histogram = Histogram("h", "a histogram", ("k",), buckets=BUCKETS, registry=registry)
    return counter, histogram, Gauge("g", "a gauge", registry=registry)


def _side_by_side() -> tuple[CollectorRegistry, CollectorRegistry, Folds]:
    """A registry updated directly, and one whose series are fed through the tallies of `Folds`."""
    direct, tallied = CollectorRegistry(), CollectorRegistry()
    folds = Folds()
    tallied.register(folds)
    return direct, tallied, folds


def _without_created(text: bytes) -> list[str]:
    return [line for line in text.decode().splitlines() if "_created" not in line]


def test_a_fold_leaves_what_inc_and_observe_would_have_to_the_bit() -> None:
    direct, tallied, folds = _side_by_side()
    c1, h1, g1 = _series(direct)
    c2, h2, g2 = _series(tallied)
    counter, histogram = folds.add(CounterTally(c2.labels("x"))), folds.add(HistogramTally(h2.labels("x")))
    gauge = folds.add(GaugeTally(g2))
    rng = random.Random(7)
    # Bucket bounds exactly, values past the last bound, and sums whose rounding depends on order.
    amounts = [*BUCKETS, 7.0, 1e9, 0.0] + [rng.expovariate(3.0) for _ in range(5000)]
    for i, amount in enumerate(amounts):
        c1.labels("x").inc(amount)
        counter.inc(amount)
        h1.labels("x").observe(amount)
        histogram.observe(amount)
        g1.inc()
        gauge.inc()
        if i % 3 == 0:
            g1.dec()
            gauge.dec()
        if i == 1000:  # a scrape in the middle: later folds start from what it left
            assert _without_created(generate_latest(direct)) == _without_created(generate_latest(tallied))
    assert _without_created(generate_latest(direct)) == _without_created(generate_latest(tallied))
    assert tallied.get_sample_value("h_count", {"k": "x"}) == len(amounts)


def test_exemplars_reach_their_buckets() -> None:
    direct, tallied, folds = _side_by_side()
    _, h1, _ = _series(direct)
    _, h2, _ = _series(tallied)
    histogram = folds.add(HistogramTally(h2.labels("x")))
    for amount, trace in ((0.003, "a"), (0.004, "b"), (0.3, "c"), (0.02, None)):
        h1.labels("x").observe(amount, {"trace_id": trace} if trace else None)
        histogram.observe(amount, {"trace_id": trace} if trace else None)

    def exemplars(registry: CollectorRegistry) -> dict[str, tuple[dict[str, str], float]]:
        text = generate_openmetrics(registry).decode()
        return {
            s.labels["le"]: (s.exemplar.labels, s.exemplar.value)
            for family in openmetrics_families(text)
            for s in family.samples
            if s.exemplar is not None
        }

    assert (
        exemplars(tallied)
        == exemplars(direct)
        == {"0.005": ({"trace_id": "b"}, 0.004), "0.5": ({"trace_id": "c"}, 0.3)}
    )


def test_every_scrape_of_the_gateway_registry_folds_first() -> None:
    metrics = GatewayMetrics()
    series = metrics.request_series("openai", "m", 200)
    for _ in range(3):
        series.requests.inc()
        series.duration.observe(0.02)
    metrics.in_flight.inc()
    labels = {"api": "openai", "model": "m", "code": "200"}
    assert metrics.registry.get_sample_value("ai_multimodel_client_requests_total", labels) == 3
    assert metrics.registry.get_sample_value("ai_multimodel_in_flight_requests") == 1
    series.requests.inc()
    assert 'ai_multimodel_client_requests_total{api="openai",code="200",model="m"} 4.0' in metrics.render().decode()


def test_a_scrape_right_after_n_requests_counts_exactly_n(start_gateway: Any, openai_upstream: Upstream) -> None:
    gw = start_gateway(base_config([upstream_model("gpt", openai_upstream)]))
    body = {"model": "gpt", "messages": [{"role": "user", "content": "hi"}]}
    with gw.client() as client:
        for n in (1, 7, 23):
            for _ in range(n):
                assert client.post("/v1/chat/completions", json=body).status_code == 200
            got = samples(client)
            done = {1: 1, 7: 8, 23: 31}[n]
            assert value(got, "ai_multimodel_client_requests_total", model="gpt", code="200", api="openai") == done
            assert value(got, "ai_multimodel_client_request_duration_seconds_count", model="gpt", code="200") == done
            assert value(got, "ai_multimodel_requests_total", model="gpt", status="200") == done
            assert value(got, "ai_multimodel_request_duration_seconds_count", model="gpt") == done
            assert value(got, "ai_multimodel_input_tokens_total", model="gpt") > 0
            assert value(got, "ai_multimodel_in_flight_requests") == 0
