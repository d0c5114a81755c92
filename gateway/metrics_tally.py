"""Hot-path series as plain numbers, copied into their prometheus_client children when scraped.

Why: each `inc()`/`observe()` of prometheus_client takes a lock, and a histogram's `observe` walks
its buckets in Python: ~8 lock acquisitions per plain request (in flight up and down, the client
request's counter and histogram, the answering model's histogram and counters). The gateway
updates these series from its event loop only, so a tally keeps them as plain numbers and
`Folds`, the first collector in the registry, copies them into the children before any family is
collected: every scrape (text, OpenMetrics, `get_sample_value`, the workers' merged view) sees
what per-call updates would have shown. The values are the same to the bit: a tally adds the same
amounts in the same order as the child would have, and the fold *sets* the child's values.

So a child with a tally is written only through it (`GatewayMetrics.series`/`request_series`);
a direct `.labels(...).inc()` on it would be overwritten by the next fold. The fold writes the
children's value objects (`_value`, `_sum`, `_buckets`: prometheus_client's own, not its API);
tests/observability/test_metrics_tally.py pins the result against the library's `inc`/`observe`.
"""

from __future__ import annotations

import time
from bisect import bisect_left
from collections.abc import Callable
from typing import Any, Protocol, TypeVar

from prometheus_client import Counter, Gauge, Histogram
from prometheus_client.metrics_core import Metric
from prometheus_client.samples import Exemplar

T = TypeVar("T", "CounterTally", "GaugeTally", "HistogramTally")


class _Value(Protocol):
    """prometheus_client's value of one sample (`MutexValue`): what a fold writes."""

    def set(self, value: float) -> None: ...

    def set_exemplar(self, exemplar: Exemplar) -> None: ...


def _value(child: Any, name: str) -> Any:
    return getattr(child, name)


class CounterTally:
    """A counter child's running total (`inc` as the child's)."""

    __slots__ = ("_into", "value")

    def __init__(self, child: Counter) -> None:
        self.value = 0.0
        self._into: _Value = _value(child, "_value")

    def inc(self, amount: float = 1) -> None:
        if amount < 0:
            raise ValueError("Counters can only be incremented by non-negative amounts.")
        self.value += amount

    def fold(self) -> None:
        self._into.set(self.value)


class GaugeTally:
    """An unlabelled gauge raised and lowered per request (requests in flight)."""

    __slots__ = ("_into", "value")

    def __init__(self, child: Gauge) -> None:
        self.value = 0
        self._into: _Value = _value(child, "_value")

    def inc(self) -> None:
        self.value += 1

    def dec(self) -> None:
        self.value -= 1

    def fold(self) -> None:
        self._into.set(float(self.value))


class HistogramTally:
    """A histogram child's bucket counts and sum (`observe` as the child's, exemplars included)."""

    __slots__ = ("_bounds", "_counts", "_exemplars", "_into_buckets", "_into_sum", "_sum")

    def __init__(self, child: Histogram) -> None:
        self._bounds: tuple[float, ...] = tuple(_value(child, "_upper_bounds"))
        self._counts = [0] * len(self._bounds)
        self._sum = 0.0
        self._exemplars: dict[int, Exemplar] = {}
        self._into_sum: _Value = _value(child, "_sum")
        self._into_buckets: list[_Value] = list(_value(child, "_buckets"))

    def observe(self, amount: float, exemplar: dict[str, str] | None = None) -> None:
        i = bisect_left(self._bounds, amount)  # the first bucket with amount <= bound (the last is +Inf)
        self._counts[i] += 1
        self._sum += amount
        if exemplar:
            self._exemplars[i] = Exemplar(exemplar, amount, time.time())

    def fold(self) -> None:
        self._into_sum.set(self._sum)
        for into, count in zip(self._into_buckets, self._counts, strict=True):
            into.set(float(count))
        for i, exemplar in self._exemplars.items():
            self._into_buckets[i].set_exemplar(exemplar)
        self._exemplars.clear()


class Folds:
    """The collector registered first: folds every tally, and yields no family of its own."""

    def __init__(self) -> None:
        self._folds: list[Callable[[], None]] = []

    def add(self, tally: T) -> T:
        self._folds.append(tally.fold)
        return tally

    def describe(self) -> list[Metric]:
        return []  # no names: registering it does not collect

    def collect(self) -> list[Metric]:
        for fold in self._folds:
            fold()
        return []
