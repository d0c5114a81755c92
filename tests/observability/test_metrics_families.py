"""The gateway's own metric families render what prometheus_client would, byte for byte, in both
formats; their values are what prometheus_client's own `inc`/`observe`/`set` leave, to the bit;
a line formatted once is reused until its values change; and a scrape of a real gateway right
after N requests counts exactly N."""

from __future__ import annotations

import math
import random
import re
from typing import Any

import pytest
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.openmetrics.exposition import generate_latest as generate_openmetrics
from prometheus_client.openmetrics.parser import text_string_to_metric_families as openmetrics_families
from prometheus_client.utils import floatToGoString

from aimm_gateway.metrics import GatewayMetrics
from aimm_gateway.metrics_families import (
    AnyFamily,
    CounterFamily,
    GaugeFamily,
    HistogramFamily,
    exposition_openmetrics,
    exposition_text,
    go_float,
)
from tests.gateway.conftest import Upstream, base_config, upstream_model
from tests.observability.test_metrics_http import samples, value

BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5)
ODD = 'a "quoted" \\ back\nslash, {brace} and spaces'


def ours() -> tuple[CollectorRegistry, list[AnyFamily], CounterFamily, HistogramFamily, GaugeFamily]:
    families: list[AnyFamily] = [
        CounterFamily("c_total", 'a counter\\ with "odd"\nhelp', ("k", "a")),
        HistogramFamily("h", "a histogram", ("k",), BUCKETS),
        GaugeFamily("g", "a gauge"),
        CounterFamily("plain_total", "an unlabelled counter"),
        GaugeFamily("empty", "a labelled gauge with no series yet", ("model",)),
    ]
    registry = CollectorRegistry()
    for family in families:
        registry.register(family)
    c, h, g = families[0], families[1], families[2]
    assert isinstance(c, CounterFamily) and isinstance(h, HistogramFamily) and isinstance(g, GaugeFamily)
    return registry, families, c, h, g


def theirs() -> tuple[CollectorRegistry, Counter, Histogram, Gauge, Counter]:
    registry = CollectorRegistry()
    c = Counter("c_total", 'a counter\\ with "odd"\nhelp', ("k", "a"), registry=registry)
    h = Histogram("h", "a histogram", ("k",), buckets=BUCKETS, registry=registry)
    g = Gauge("g", "a gauge", registry=registry)
    plain = Counter("plain_total", "an unlabelled counter", registry=registry)
    Gauge("empty", "a labelled gauge with no series yet", ("model",), registry=registry)
    return registry, c, h, g, plain


def without_created(text: bytes) -> list[str]:
    return [line for line in text.decode().splitlines() if "_created" not in line]


def test_the_exposition_is_prometheus_clients_byte_for_byte_in_both_formats() -> None:
    """Our rendering against prometheus_client's formatting of the same samples (our families are
    also its collectors): labels sorted (`le` among them), escaped, `_created` grouped, exemplars."""
    registry, families, c, h, g = ours()
    rng = random.Random(3)
    for _ in range(2):  # the second round re-renders from the lines the first one kept
        for i in range(300):
            c.labels(f"k{i % 7}", ODD if i % 5 == 0 else "x").inc(rng.choice([1, 0.25, 1e-9, 3e6]))
            h.labels(f"k{i % 3}").observe(rng.expovariate(2.0), {"trace_id": f"{i:032x}"} if i % 11 == 0 else None)
            g.set(rng.choice([0.0, -2.5, 1e7, math.inf, -math.inf, 12345678.9]))
        assert exposition_text(families) == generate_latest(registry)
        assert exposition_openmetrics(families) == generate_openmetrics(registry)
    g.set(math.nan)
    assert exposition_text(families) == generate_latest(registry)


def test_values_are_what_prometheus_clients_own_updates_leave_to_the_bit() -> None:
    mine, families, c, h, g = ours()
    registry, c2, h2, g2, plain2 = theirs()
    rng = random.Random(7)
    # Bucket bounds exactly, values past the last bound, sums whose rounding depends on order.
    amounts = [*BUCKETS, 7.0, 1e9, 0.0] + [rng.expovariate(3.0) for _ in range(5000)]
    for i, amount in enumerate(amounts):
        c.labels("x", "y").inc(amount)
        c2.labels("x", "y").inc(amount)
        h.labels("x").observe(amount)
        h2.labels("x").observe(amount)
        g.labels().inc()
        g2.inc()
        if i % 3 == 0:
            g.labels().dec(0.5)
            g2.dec(0.5)
        if i == 1000:  # a scrape in the middle: later lines start from what it kept
            assert without_created(exposition_text(families)) == without_created(generate_latest(registry))
    families[3].labels().inc(2)  # type: ignore[union-attr]
    plain2.inc(2)
    assert without_created(exposition_text(families)) == without_created(generate_latest(registry))
    assert mine.get_sample_value("h_count", {"k": "x"}) == len(amounts)


def test_exemplars_reach_their_buckets() -> None:
    _, families, _, h, _ = ours()
    for amount, trace in ((0.003, "a"), (0.004, "b"), (0.3, "c"), (0.02, None)):
        h.labels("x").observe(amount, {"trace_id": trace} if trace else None)
    found = {
        s.labels["le"]: (s.exemplar.labels, s.exemplar.value)
        for family in openmetrics_families(exposition_openmetrics(families).decode())
        for s in family.samples
        if s.exemplar is not None
    }
    assert found == {"0.005": ({"trace_id": "b"}, 0.004), "0.5": ({"trace_id": "c"}, 0.3)}
    assert b"trace_id" not in exposition_text(families)  # the text format has no exemplars


def test_a_line_is_formatted_again_only_when_its_values_changed() -> None:
    _, families, c, h, _ = ours()
    quiet, busy = c.labels("quiet", "x"), h.labels("busy")
    quiet.inc()
    busy.observe(0.2)
    exposition_text(families)
    kept_quiet, kept_busy = quiet.text(), busy.text()
    exposition_text(families)
    assert quiet.text() is kept_quiet and busy.text() is kept_busy  # reused, not rebuilt
    busy.observe(0.0)  # the sum is the same: only a count tells
    text = exposition_text(families).decode()
    assert busy.text() is not kept_busy and 'h_count{k="busy"} 2.0' in text
    assert quiet.text() is kept_quiet


@pytest.mark.parametrize("seed", range(3))
def test_go_float_is_floattogostring(seed: int) -> None:
    rng = random.Random(seed)
    values = [0.0, -0.0, 1.0, 999999.0, 1e6, 1234567.0, 1e16, 1e-7, -1e7, math.inf, -math.inf, 0.1 + 0.2]
    values += [rng.uniform(-1e9, 1e9) for _ in range(2000)] + [rng.expovariate(1e-5) for _ in range(2000)]
    values += [float(rng.randrange(10**9)) for _ in range(2000)]
    assert [go_float(v) for v in values] == [floatToGoString(v) for v in values]
    assert go_float(math.nan) == floatToGoString(math.nan)


def test_labels_are_checked_and_series_removed() -> None:
    registry, families, c, _, _ = ours()
    with pytest.raises(ValueError, match="expected labels"):
        c.labels("only-one")
    c.labels("x", "y").inc()
    c.remove("x", "y")
    assert registry.get_sample_value("c_total", {"k": "x", "a": "y"}) is None
    with pytest.raises(ValueError, match="non-negative"):
        c.labels("x", "y").inc(-1)
    assert re.search(r"^c_total\{a=\"y\",k=\"x\"\} 0\.0$", exposition_text(families).decode(), re.M)


def test_every_scrape_of_the_gateway_registry_shows_the_latest_values() -> None:
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
    assert metrics.render() == generate_latest(metrics.registry)


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
