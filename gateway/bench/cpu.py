"""CPU time per request from /proc/<pid>/stat: far steadier than requests/s on a shared machine."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from aimm_gateway.bench.loadgen import WrkResult
from aimm_gateway.bench.procs import cpu_seconds


@dataclass
class CpuPerRequest:
    us: float  # process CPU (user + system) per request, µs
    rps: float
    requests: int


def measure(pid: int, load: Callable[[], WrkResult]) -> CpuPerRequest:
    before = cpu_seconds(pid)
    result = load()
    cpu = cpu_seconds(pid) - before
    return CpuPerRequest(cpu / max(1, result.requests) * 1e6, result.rps, result.requests)


def interleaved(loads: Mapping[str, tuple[int, Callable[[], WrkResult]]], rounds: int) -> dict[str, CpuPerRequest]:
    """Each round runs every load once, in turn; the median round of each (by CPU per request).

    Interleaving puts every contender under the same drift of a shared machine's load.
    """
    samples: dict[str, list[CpuPerRequest]] = {name: [] for name in loads}
    for _ in range(rounds):
        for name, (pid, load) in loads.items():
            samples[name].append(measure(pid, load))
    return {name: sorted(s, key=lambda x: x.us)[rounds // 2] for name, s in samples.items()}
