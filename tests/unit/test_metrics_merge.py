"""The text-level `/metrics` merge of the workers' expositions.

The reference is the merge it replaced (parse each exposition with prometheus-client, add the
label, render with generate_latest), kept here: on what prometheus-client renders, the new merge
must give the same bytes, so the same families and samples to any parser.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import pytest
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Summary, generate_latest
from prometheus_client.metrics_core import Metric
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

from aimm_gateway.metrics import GatewayMetrics
from aimm_gateway.metrics_families import Family
from aimm_gateway.workers.metrics_merge import UP, WORKER_LABEL, merge_metrics

# Label values a model name or a reason could hold: the escaped ones, braces (also where a naive
# `"} ` or `}` search would take them for the end of the label block), blanks and commas.
AWKWARD = [
    "plain",
    "br}ace",
    "} starts like an end",
    "ends like a name=",
    'a"} quoted',
    "{open",
    "back\\slash\\",
    "new\nline",
    "sp ace, comma",
    '"',
    "}",
]


def reference_merge(expositions: dict[int, bytes], pids: dict[int, int]) -> bytes:
    """The merge before the text-level one: parse, relabel, render."""

    class Families:
        def __init__(self, families: Iterable[Metric]) -> None:
            self._families = list(families)

        def collect(self) -> Iterator[Metric]:
            return iter(self._families)

    merged: dict[str, Metric] = {}
    for index in sorted(expositions):
        for family in text_string_to_metric_families(expositions[index].decode()):
            into = merged.setdefault(family.name, Metric(family.name, family.documentation, family.type, family.unit))
            into.samples.extend(
                Sample(s.name, {**s.labels, WORKER_LABEL: str(index)}, s.value, s.timestamp, s.exemplar)
                for s in family.samples
            )
    up = Metric(UP, "1 for each worker process that answered this scrape.", "gauge")
    up.samples.extend(Sample(UP, {WORKER_LABEL: str(i), "pid": str(p)}, 1.0) for i, p in sorted(pids.items()))
    merged[UP] = up
    registry = CollectorRegistry(auto_describe=False)
    registry.register(Families(merged.values()))
    return generate_latest(registry)


class _Mixed:
    """A collector's family with an unlabelled sample and one whose value holds a `}`: as many `}` as lines."""

    def collect(self) -> Iterator[Metric]:
        mixed = Metric("ai_mixed", "Mixed.", "gauge")
        mixed.add_sample("ai_mixed", {}, 1.0)
        mixed.add_sample("ai_mixed", {"model": "y}"}, 2.0)
        yield mixed


def _worker(index: int) -> bytes:
    """A registry of every kind, some families only in some workers, and awkward label values."""
    r = CollectorRegistry()
    c = Counter("ai_calls", 'Calls with a doc that holds a } and a \\ and a "quote".', ["model", "code"], registry=r)
    for value in AWKWARD:
        c.labels(value, "200").inc(index + 1)
    Gauge("ai_in_flight", "Unlabelled.", registry=r).set(index)
    h = Histogram("ai_latency_seconds", "Labelled histogram.", ["model"], buckets=(0.1, 1.0), registry=r)
    for value in AWKWARD[:4]:
        h.labels(value).observe(0.5 * index)
    Histogram("ai_plain_seconds", "Unlabelled histogram.", buckets=(1.0,), registry=r).observe(2.0)
    Summary("ai_size_bytes", "Unlabelled summary.", registry=r).observe(10)
    Counter("ai_empty", "Labelled, no child yet.", ["reason"], registry=r)
    r.register(_Mixed())
    if index == 1:  # only the second worker has these
        Gauge("ai_only_one", "One worker's.", ["model"], registry=r).labels("x}").set(7)
        Counter("ai_only_one_total_kinds", "One worker's counter.", registry=r).inc(1e-9)
    return generate_latest(r)


def _families(text: bytes) -> dict[str, tuple[str, str, list[Sample]]]:
    return {f.name: (f.documentation, f.type, f.samples) for f in text_string_to_metric_families(text.decode())}


def test_same_bytes_families_and_samples_as_parse_and_render() -> None:
    expositions = {i: _worker(i) for i in range(3)}
    pids = {0: 10, 1: 11, 2: 12}
    merged, reference = merge_metrics(expositions, pids), reference_merge(expositions, pids)
    assert _families(merged) == _families(reference)
    assert merged == reference  # `worker` last where the re-render's sorted label names put it
    calls = [s for s in _families(merged)["ai_calls"][2] if s.name == "ai_calls_total"]
    assert {(s.labels["model"], s.labels["worker"]) for s in calls} == {(v, str(i)) for v in AWKWARD for i in range(3)}


def test_gateway_exposition_merges_to_the_same_bytes() -> None:
    workers = [GatewayMetrics(), GatewayMetrics()]
    for i, m in enumerate(workers):
        for model in ("model-a", 'odd} "model\\'):
            s = m.series(model, "openai")
            s.ok.inc(i + 1)
            s.duration.observe(0.2)
            s.input_tokens.inc(10)
            m.request_series("openai", model, 200).requests.inc()
        m.count_rate_limited("rpm")
    expositions = {i: m.exposition("")[0] for i, m in enumerate(workers)}
    assert merge_metrics(expositions, {0: 1, 1: 2}) == reference_merge(expositions, {0: 1, 1: 2})


def test_every_gateway_label_sorts_before_worker() -> None:
    """Why appending `worker` gives the re-render's order: a label sorting after it would break that."""
    m = GatewayMetrics()
    names = {n for metric in vars(m).values() if isinstance(metric, Family) for n in metric.labelnames}
    assert names and all(n < WORKER_LABEL for n in names), sorted(n for n in names if n >= WORKER_LABEL)


def test_help_and_type_once_per_family_in_first_appearance_order() -> None:
    text = merge_metrics({i: _worker(i) for i in range(3)}, {}).decode()
    helps = [line.split()[2] for line in text.splitlines() if line.startswith("# HELP ")]
    types = [line.split()[2] for line in text.splitlines() if line.startswith("# TYPE ")]
    assert helps == types and len(helps) == len(set(helps))
    first = [line.split()[2] for line in _worker(0).decode().splitlines() if line.startswith("# HELP ")]
    assert helps[: len(first)] == first  # the first worker's families first, in its order
    assert helps.index("ai_only_one") >= len(first)
    assert helps[-1] == UP


def test_family_of_one_worker_only_has_that_worker_samples() -> None:
    families = _families(merge_metrics({i: _worker(i) for i in range(3)}, {}))
    doc, kind, samples = families["ai_only_one"]
    assert (doc, kind) == ("One worker's.", "gauge")
    assert [(s.labels, s.value) for s in samples] == [({"model": "x}", "worker": "1"}, 7.0)]
    _, _, samples = families["ai_only_one_total_kinds"]
    assert {s.labels["worker"] for s in samples} == {"1"}


def test_worker_up_family() -> None:
    text = merge_metrics({0: b"", 2: b""}, {2: 4242, 0: 4240})
    assert text == (
        b"# HELP ai_multimodel_worker_up 1 for each worker process that answered this scrape.\n"
        b"# TYPE ai_multimodel_worker_up gauge\n"
        b'ai_multimodel_worker_up{pid="4240",worker="0"} 1.0\n'
        b'ai_multimodel_worker_up{pid="4242",worker="2"} 1.0\n'
    )
    assert text == reference_merge({}, {2: 4242, 0: 4240})


GOOD = b'# HELP a_total A.\n# TYPE a_total counter\na_total{m="x"} 1.0\n'


@pytest.mark.parametrize(
    ("broken", "kept"),
    [
        (b"", set()),
        (b"\n\n", set()),
        (b"not a metric at all", set()),
        (GOOD[:-5], set()),  # cut off mid-line: that line goes, the header stays
        (GOOD + b'a_total{m="y"} 2', {("a_total", "x")}),  # the cut-off last line goes
        (
            b'early{m="z"} 3.0\nearly_bare 4\ngarbage line here\n' + GOOD,
            {("early", "z"), ("early_bare", None), ("a_total", "x")},
        ),
        (b"# HELP a_total A.\n" + GOOD.split(b"\n", 2)[2], {("a_total", "x")}),  # no TYPE of its own
        (
            b"# HELP ai_multimodel_worker_up Forged.\n# TYPE ai_multimodel_worker_up gauge\n" + UP.encode() + b" 1\n",
            set(),
        ),
    ],
)
def test_malformed_worker_does_not_break_the_scrape(broken: bytes, kept: set[tuple[str, str | None]]) -> None:
    text = merge_metrics({0: GOOD, 1: broken}, {0: 1, 1: 2})
    families = _families(text)  # still parses
    from_broken = {(s.name, s.labels.get("m")) for f in families.values() for s in f[2] if s.labels["worker"] == "1"}
    assert from_broken - {(UP, None)} == kept
    assert families["a"][:2] == ("A.", "counter")
    assert [line for line in text.splitlines() if line.startswith(b"# TYPE a_total")] == [b"# TYPE a_total counter"]
    assert text.count(b"# HELP " + UP.encode()) == 1


def test_help_and_type_of_the_first_worker_that_has_them() -> None:
    """Mid-upgrade the docs may differ: one HELP all the same, the first worker's."""
    newer = GOOD.replace(b"# HELP a_total A.", b"# HELP a_total A, reworded.")
    for first, second in ((GOOD, newer), (newer, GOOD)):
        text = merge_metrics({0: first, 1: second}, {})
        assert [line for line in text.splitlines() if line.startswith(b"# HELP a_total")] == [first.split(b"\n")[0]]
    assert _families(merge_metrics({0: newer, 1: GOOD}, {}))["a"][0] == "A, reworded."


def test_a_comment_inside_a_family_stays_in_place() -> None:
    noted = GOOD + b"# just a note\n" + b'a_total{m="w"} 1.0\n'
    text = merge_metrics({0: noted}, {})
    assert b'a_total{m="x",worker="0"} 1.0\n# just a note\na_total{m="w",worker="0"} 1.0\n' in text
    assert [s.labels["m"] for s in _families(text)["a"][2]] == ["x", "w"]
