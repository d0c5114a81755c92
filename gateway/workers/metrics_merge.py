"""One Prometheus exposition from every worker's own: each sample gains a `worker` label.

Why per-worker series rather than prometheus-client's multiprocess mode: the mode makes every
`inc()`/`observe()` a locked write to an mmap'd file in every process (measured in
docs/benchmarks.md), is switched on process-wide by an environment variable, and needs a
merge policy per gauge. Here a request pays nothing; a scrape gathers the workers' registries
(over unix sockets, see `peers.py`) and relabels them. `sum without (worker)` gives the pod's
totals, and a restarted worker is an ordinary counter reset of its own series.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.metrics_core import Metric
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

WORKER_LABEL = "worker"
UP = "ai_multimodel_worker_up"


class _Families:
    """A collector that yields already-built families (the merge result) once per render."""

    def __init__(self, families: Iterable[Metric]) -> None:
        self._families = list(families)

    def collect(self) -> Iterator[Metric]:
        return iter(self._families)


def merge_metrics(expositions: dict[int, bytes], pids: dict[int, int]) -> bytes:
    """Merge the text expositions of workers (by index) into one, `worker="<index>"` on every sample.

    `pids` gives the workers that answered with their process ids; they get an
    `ai_multimodel_worker_up{worker,pid} 1` series, so a restarted worker shows a new pid.
    """
    merged: dict[str, Metric] = {}
    for index in sorted(expositions):
        label = str(index)
        for family in text_string_to_metric_families(expositions[index].decode()):
            into = merged.get(family.name)
            if into is None:
                into = merged[family.name] = Metric(family.name, family.documentation, family.type, family.unit)
            into.samples.extend(_relabel(family.samples, label))
    up = Metric(UP, "1 for each worker process that answered this scrape.", "gauge")
    up.samples.extend(Sample(UP, {WORKER_LABEL: str(i), "pid": str(pid)}, 1.0) for i, pid in sorted(pids.items()))
    merged[UP] = up
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Families(merged.values()))
    return generate_latest(registry)


def _relabel(samples: Iterable[Sample], worker: str) -> Iterator[Sample]:
    for s in samples:
        yield Sample(s.name, {**s.labels, WORKER_LABEL: worker}, s.value, s.timestamp, s.exemplar)
