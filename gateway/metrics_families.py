"""The gateway's metric families: plain numbers on the event loop, rendered by hand, each line once.

Why not prometheus_client's Counter, Gauge and Histogram:
- each `inc`/`observe` takes a lock, and a histogram's walks its buckets in Python (~8 lock
  acquisitions per plain request);
- its exposition formats every sample on every scrape. At 1,000 models that have served
  traffic (~83,000 samples, 8 MB) `generate_latest` held the event loop 1.3-2.0 s per scrape
  (OpenMetrics, what Prometheus asks for: 2.4-2.8 s); the workers' merged view on top of it.

Here a child keeps plain numbers (the gateway updates them from its event loop only) and its
rendered lines, formatted again only when its values changed since the last scrape: an idle
model costs a comparison per scrape. The output is prometheus_client's own, byte for byte, in
both formats (tests/observability/test_metrics_families.py renders the same updates both ways),
and every family is also a prometheus_client collector, so `CollectorRegistry.get_sample_value`,
`generate_latest` and the parsers see the same samples.
"""

from __future__ import annotations

import time
from bisect import bisect_left
from collections.abc import Iterable, Sequence
from itertools import accumulate
from typing import ClassVar, Generic, TypeVar

from prometheus_client.metrics_core import Metric
from prometheus_client.samples import Exemplar, Sample
from prometheus_client.utils import floatToGoString

INF = float("inf")


def go_float(value: float) -> str:
    """`floatToGoString`'s text for a sample value, its common cases without its Python overhead."""
    text = repr(value)
    if value != value or value in (INF, -INF) or (value > 0 and text.find(".") > 6):
        return floatToGoString(value)  # NaN, ±Inf, and Go's exponent from 1e6 up
    return text


def _count_text(count: int) -> str:
    """A bucket count, an integer, as `floatToGoString(float(count))` writes it."""
    return f"{count}.0" if count < 1_000_000 else floatToGoString(float(count))


def _escape(value: str) -> str:
    return value.replace("\\", r"\\").replace("\n", r"\n").replace('"', r"\"")


def label_text(pairs: Iterable[tuple[str, str]]) -> str:
    """`{k="v",...}` with names sorted and values escaped, as both formats write labels; '' for none."""
    items = sorted(pairs)
    return "{" + ",".join(f'{k}="{_escape(v)}"' for k, v in items) + "}" if items else ""


class _Child:
    """One labelled series: its labels, and its lines as last rendered (`_seen`: the values they
    show), as bytes: a scrape joins them once, with no text to encode."""

    __slots__ = ("_om", "_seen", "_text", "created_line", "labels")

    def __init__(self, labels: dict[str, str]) -> None:
        self.labels = labels
        self._seen: object = None
        self._text = b""  # the text format's lines
        self._om = b""  # OpenMetrics: the same lines and the `_created` one
        self.created_line = b""  # counters and histograms: their `_created` sample's line


class _OneValue(_Child):
    """A child of one sample (a counter's `_total`, a gauge): its value and that line's prefix."""

    __slots__ = ("_prefix", "value")

    def __init__(self, prefix: str, labels: dict[str, str]) -> None:
        super().__init__(labels)
        self.value = 0.0
        self._prefix = prefix

    def _render(self) -> None:
        self._seen = self.value
        self._text = f"{self._prefix}{go_float(self.value)}\n".encode()
        self._om = self._text + self.created_line

    def text(self) -> bytes:
        if self._seen != self.value:
            self._render()
        return self._text

    def om(self) -> bytes:
        if self._seen != self.value:
            self._render()
        return self._om


class CounterChild(_OneValue):
    __slots__ = ("created",)

    def __init__(self, name: str, labels: dict[str, str]) -> None:
        text = label_text(labels.items())
        super().__init__(f"{name}_total{text} ", labels)
        self.created = time.time()
        self.created_line = f"{name}_created{text} {floatToGoString(self.created)}\n".encode()

    def inc(self, amount: float = 1) -> None:
        if amount < 0:
            raise ValueError("Counters can only be incremented by non-negative amounts.")
        self.value += amount

    def samples(self, name: str) -> list[Sample]:
        return [
            Sample(f"{name}_total", self.labels, self.value, None, None),
            Sample(f"{name}_created", self.labels, self.created, None, None),
        ]


class GaugeChild(_OneValue):
    __slots__ = ()

    def __init__(self, name: str, labels: dict[str, str]) -> None:
        super().__init__(f"{name}{label_text(labels.items())} ", labels)

    def inc(self, amount: float = 1) -> None:
        self.value += amount

    def dec(self, amount: float = 1) -> None:
        self.value -= amount

    def set(self, value: float) -> None:
        self.value = float(value)

    def samples(self, name: str) -> list[Sample]:
        return [Sample(name, self.labels, self.value, None, None)]


class HistogramChild(_Child):
    """Counts per bucket (not cumulative: `observe` adds to one), their sum, each bucket's latest
    exemplar (OpenMetrics only)."""

    __slots__ = ("_bounds", "_counts", "_exemplars", "_prefixes", "_seen_sum", "_sum", "created")

    def __init__(self, name: str, labels: dict[str, str], bounds: tuple[float, ...]) -> None:
        super().__init__(labels)
        self._bounds = bounds
        self._counts = [0] * len(bounds)
        self._sum = 0.0
        self._seen_sum = -1.0  # with `_seen` None: nothing rendered yet
        self._exemplars: list[Exemplar | None] | None = None  # made by the first exemplar (tracing on)
        self.created = time.time()
        pairs = list(labels.items())
        self._prefixes = [f"{name}_bucket{label_text([*pairs, ('le', floatToGoString(b))])} " for b in bounds]
        text = label_text(pairs)
        self._prefixes += [f"{name}_count{text} ", f"{name}_sum{text} "]
        self.created_line = f"{name}_created{text} {floatToGoString(self.created)}\n".encode()

    def observe(self, amount: float, exemplar: dict[str, str] | None = None) -> None:
        i = bisect_left(self._bounds, amount)  # the first bucket with amount <= bound (the last is +Inf)
        self._counts[i] += 1
        self._sum += amount
        if exemplar:
            if self._exemplars is None:
                self._exemplars = [None] * len(self._bounds)
            self._exemplars[i] = Exemplar(exemplar, amount, time.time())

    def _cumulative(self) -> list[float]:
        return [float(total) for total in accumulate(self._counts)]

    def _render(self) -> None:
        """The bucket, count and sum lines (no exemplars: the text format has none)."""
        counts = self._counts
        self._seen, self._seen_sum = counts.copy(), self._sum
        totals = list(accumulate(counts))
        prefixes = self._prefixes
        if totals[-1] < 1_000_000:  # every count is written `N.0`: one format for all the lines
            lines = [f"{prefix}{total}.0\n" for prefix, total in zip(prefixes, totals, strict=False)]
        else:
            lines = [f"{prefix}{_count_text(total)}\n" for prefix, total in zip(prefixes, totals, strict=False)]
        lines += (f"{prefixes[-2]}{lines[-1][len(prefixes[-3]) :]}", f"{prefixes[-1]}{go_float(self._sum)}\n")
        self._text = "".join(lines).encode()
        self._om = self._text + self.created_line

    def text(self) -> bytes:
        if self._seen != self._counts or self._seen_sum != self._sum:
            self._render()
        return self._text

    def om(self) -> bytes:
        lines = self.text()
        if self._exemplars is None:
            return self._om
        out = lines.decode().splitlines(keepends=True)
        for i, exemplar in enumerate(self._exemplars):
            if exemplar is not None:
                out[i] = f"{out[i][:-1]}{_exemplar_text(exemplar)}\n"
        return "".join(out).encode() + self.created_line

    def samples(self, name: str) -> list[Sample]:
        labels, exemplars = self.labels, self._exemplars or [None] * len(self._bounds)
        out = [
            Sample(f"{name}_bucket", {**labels, "le": floatToGoString(b)}, v, None, e)
            for b, v, e in zip(self._bounds, self._cumulative(), exemplars, strict=True)
        ]
        out.append(Sample(f"{name}_count", labels, out[-1].value, None, None))
        out.append(Sample(f"{name}_sum", labels, self._sum, None, None))
        out.append(Sample(f"{name}_created", labels, self.created, None, None))
        return out


def _exemplar_text(exemplar: Exemplar) -> str:
    labels = label_text(exemplar.labels.items())
    return f" # {labels} {floatToGoString(exemplar.value)} {exemplar.timestamp}"


C = TypeVar("C", CounterChild, GaugeChild, HistogramChild)


class Family(Generic[C]):
    """A metric family: its children by label values, rendered in the order they were made."""

    kind: ClassVar[str]

    def __init__(self, name: str, doc: str, labelnames: Sequence[str] = ()) -> None:
        self.name = name
        self.doc = doc
        self.labelnames = tuple(labelnames)
        self._children: dict[tuple[str, ...], C] = {}
        if not self.labelnames:
            self._children[()] = self._make({})

    def _make(self, labels: dict[str, str]) -> C:
        raise NotImplementedError

    def labels(self, *values: object) -> C:
        """The child for these label values (made on first use); values are str()-ed, as
        prometheus_client does. No values: an unlabelled family's one child."""
        key = tuple(map(str, values))
        child = self._children.get(key)
        if child is None:
            if len(key) != len(self.labelnames):
                raise ValueError(f"{self.name}: expected labels {self.labelnames}, got {len(key)} values")
            child = self._children[key] = self._make(dict(zip(self.labelnames, key, strict=True)))
        return child

    def remove(self, *values: object) -> None:
        self._children.pop(tuple(map(str, values)), None)

    # -- exposition -------------------------------------------------------------------------------

    def _text_name(self) -> str:
        return self.name

    def render_text(self, out: list[bytes]) -> None:
        """The classic text format (0.0.4), as prometheus_client's `generate_latest` writes it."""
        doc = self.doc.replace("\\", r"\\").replace("\n", r"\n")
        name = self._text_name()
        out.append(f"# HELP {name} {doc}\n# TYPE {name} {self.kind}\n".encode())
        children = self._children.values()
        out.extend([child.text() for child in children])  # comprehensions: the per-child cost of a scrape
        if children and self.kind != "gauge":  # counters and histograms: the `_created` samples, as a gauge
            out.append(f"# HELP {self.name}_created {doc}\n# TYPE {self.name}_created gauge\n".encode())
            out.extend([child.created_line for child in children])

    def render_openmetrics(self, out: list[bytes]) -> None:
        """OpenMetrics 1.0, as prometheus_client's openmetrics `generate_latest` writes it."""
        out.append(f"# HELP {self.name} {_escape(self.doc)}\n# TYPE {self.name} {self.kind}\n".encode())
        out.extend([child.om() for child in self._children.values()])

    # -- prometheus_client's collector protocol ---------------------------------------------------

    def describe(self) -> list[Metric]:
        return [Metric(self.name, self.doc, self.kind)]

    def collect(self) -> list[Metric]:
        metric = Metric(self.name, self.doc, self.kind)
        for child in list(self._children.values()):
            metric.samples.extend(child.samples(self.name))
        return [metric]


class CounterFamily(Family[CounterChild]):
    kind = "counter"

    def __init__(self, name: str, doc: str, labelnames: Sequence[str] = ()) -> None:
        super().__init__(name.removesuffix("_total"), doc, labelnames)  # the family's name, as prometheus_client's

    def _make(self, labels: dict[str, str]) -> CounterChild:
        return CounterChild(self.name, labels)

    def _text_name(self) -> str:
        return f"{self.name}_total"

    def inc(self, amount: float = 1) -> None:
        self.labels().inc(amount)


class GaugeFamily(Family[GaugeChild]):
    kind = "gauge"

    def _make(self, labels: dict[str, str]) -> GaugeChild:
        return GaugeChild(self.name, labels)

    def set(self, value: float) -> None:
        self.labels().set(value)


class HistogramFamily(Family[HistogramChild]):
    kind = "histogram"

    def __init__(self, name: str, doc: str, labelnames: Sequence[str], buckets: Sequence[float]) -> None:
        bounds = tuple(float(b) for b in buckets)
        if list(bounds) != sorted(bounds) or bounds[0] < 0:
            raise ValueError(f"{name}: buckets must be sorted and non-negative")
        self.bounds = bounds if bounds[-1] == INF else (*bounds, INF)
        super().__init__(name, doc, labelnames)

    def _make(self, labels: dict[str, str]) -> HistogramChild:
        return HistogramChild(self.name, labels, self.bounds)

    def observe(self, amount: float, exemplar: dict[str, str] | None = None) -> None:
        self.labels().observe(amount, exemplar)


AnyFamily = CounterFamily | GaugeFamily | HistogramFamily


def exposition_text(families: Iterable[AnyFamily]) -> bytes:
    out: list[bytes] = []
    for family in families:
        family.render_text(out)
    return b"".join(out)


def exposition_openmetrics(families: Iterable[AnyFamily]) -> bytes:
    out: list[bytes] = []
    for family in families:
        family.render_openmetrics(out)
    out.append(b"# EOF\n")
    return b"".join(out)
