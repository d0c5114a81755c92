"""CPU time per request from /proc/<pid>/stat: far steadier than requests/s on a shared machine."""

from __future__ import annotations

import statistics
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from aimm_gateway.bench.loadgen import WrkResult
from aimm_gateway.bench.procs import cpu_seconds


@dataclass
class CpuPerRequest:
    us: float  # process CPU (user + system) per request, µs
    rps: float
    requests: int
    by_round: list[float] = field(default_factory=list)  # µs per request in each interleaved round, in order


def paired_ratios(this: CpuPerRequest, base: CpuPerRequest) -> tuple[float, float, float]:
    """`this` over `base` round by round (both measured in the same round): median, min, max.
    A ratio of two medians lets a slow stretch of the machine land in one contender's median
    round and not the other's; a ratio within each round does not."""
    ratios = [a / b for a, b in zip(this.by_round, base.by_round, strict=True)] or [this.us / base.us]
    return statistics.median(ratios), min(ratios), max(ratios)


def measure(pid: int, load: Callable[[], WrkResult]) -> CpuPerRequest:
    before = cpu_seconds(pid)
    result = load()
    cpu = cpu_seconds(pid) - before
    return CpuPerRequest(cpu / max(1, result.requests) * 1e6, result.rps, result.requests)


def interleaved(loads: Mapping[str, tuple[int, Callable[[], WrkResult]]], rounds: int) -> dict[str, CpuPerRequest]:
    """Each round runs every load once, in turn; the median round of each (by CPU per request),
    with every round's figure (`by_round`).

    Interleaving puts every contender under the same drift of a shared machine's load; the order
    turns by one each round, so no contender always runs first (after the idle gap) or last.
    """
    names = list(loads)
    samples: dict[str, list[CpuPerRequest]] = {name: [] for name in names}
    for r in range(rounds):
        for name in names[r % len(names) :] + names[: r % len(names)]:
            pid, load = loads[name]
            samples[name].append(measure(pid, load))
    return {name: _median_round(s) for name, s in samples.items()}


def _median_round(samples: list[CpuPerRequest]) -> CpuPerRequest:
    median = sorted(samples, key=lambda x: x.us)[len(samples) // 2]
    return CpuPerRequest(median.us, median.rps, median.requests, [s.us for s in samples])
