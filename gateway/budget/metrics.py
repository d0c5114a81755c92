"""The series cost governance counts (usage store, budgets, state layer, cache).

They are defined with every other series in the gateway's one registry (`GatewayMetrics`,
gateway/metrics.py); this is the part of it the cost services use, so they (and their tests)
depend on no more than that.
"""

from __future__ import annotations

from typing import Protocol

from aimm_gateway.metrics_families import CounterFamily, GaugeFamily


class CostMetrics(Protocol):
    usage_dropped: CounterFamily
    usage_write_errors: CounterFamily
    usage_queued: GaugeFamily
    budget_thresholds: CounterFamily
    budget_refused: CounterFamily
    state_unavailable: CounterFamily
    cache: CounterFamily
