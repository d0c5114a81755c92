"""The series cost governance counts (usage store, budgets, state layer, cache).

They are defined with every other series in the gateway's one registry (`GatewayMetrics`,
gateway/metrics.py); this is the part of it the cost services use, so they (and their tests)
depend on no more than that.
"""

from __future__ import annotations

from typing import Protocol

from prometheus_client import Counter, Gauge


class CostMetrics(Protocol):
    usage_dropped: Counter
    usage_write_errors: Counter
    usage_queued: Gauge
    budget_thresholds: Counter
    budget_refused: Counter
    state_unavailable: Counter
    cache: Counter
