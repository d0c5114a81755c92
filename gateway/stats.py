"""Live per-model statistics over a sliding window, for /api/v1/metrics and /api/v1/stats.

Kept separate from Prometheus (which is cumulative) because users and the operator want
"right now" figures: requests per second, percentiles, error rate, cost per hour.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

WINDOW_S = 60.0


@dataclass(slots=True)
class _Sample:
    at: float
    latency_s: float
    ok: bool
    cost: Decimal


@dataclass(slots=True)
class ModelStats:
    requests_total: int = 0
    errors_total: int = 0
    cost_total: Decimal = Decimal(0)
    last_error: str | None = None
    window: deque[_Sample] = field(default_factory=deque)


class LiveStats:
    def __init__(self, clock: Callable[[], float] = time.monotonic, window_s: float = WINDOW_S) -> None:
        self._clock = clock
        self._window_s = window_s
        self._models: dict[str, ModelStats] = {}
        self._budget_spend: dict[str, Decimal] = {}

    def record(self, model: str, latency_s: float, ok: bool, cost: Decimal, error: str | None = None) -> None:
        stats = self._models.get(model)
        if stats is None:
            stats = self._models[model] = ModelStats()
        now = self._clock()
        stats.requests_total += 1
        stats.cost_total += cost
        if not ok:
            stats.errors_total += 1
            stats.last_error = error
        stats.window.append(_Sample(now, latency_s, ok, cost))
        self._trim(stats.window, now)

    def add_budget_spend(self, budget: str, cost: Decimal) -> Decimal:
        """Add to a budget's spend (this process, since start); returns the new total."""
        total = self._budget_spend[budget] = self._budget_spend.get(budget, Decimal(0)) + cost
        return total

    def _trim(self, window: deque[_Sample], now: float) -> None:
        horizon = now - self._window_s
        while window and window[0].at < horizon:
            window.popleft()

    def per_model(self) -> dict[str, dict[str, Any]]:
        now = self._clock()
        out: dict[str, dict[str, Any]] = {}
        for name, stats in self._models.items():
            self._trim(stats.window, now)
            samples = stats.window
            latencies = sorted(s.latency_s for s in samples if s.ok)
            errors = sum(1 for s in samples if not s.ok)
            out[name] = {
                "requests_total": stats.requests_total,
                "errors_total": stats.errors_total,
                "requests_per_minute": len(samples) * 60.0 / self._window_s,
                "error_rate": errors / len(samples) if samples else 0.0,
                "p50_latency_ms": _percentile_ms(latencies, 0.50),
                "p95_latency_ms": _percentile_ms(latencies, 0.95),
                "p99_latency_ms": _percentile_ms(latencies, 0.99),
                "cost_usd_total": str(stats.cost_total),
                "cost_usd_window": sum((s.cost for s in samples), Decimal(0)),
                "window_requests": len(samples),
                "last_error": stats.last_error,
            }
        return out

    def summary(self) -> dict[str, Any]:
        """The /api/v1/metrics document: live totals across models plus each model's share."""
        models = self.per_model()
        now = self._clock()
        all_latencies: list[float] = []
        window_requests = 0
        window_errors = 0
        window_cost = Decimal(0)
        for stats in self._models.values():
            all_latencies.extend(s.latency_s for s in stats.window if s.ok)
            window_requests += len(stats.window)
            window_errors += sum(1 for s in stats.window if not s.ok)
            window_cost += sum((s.cost for s in stats.window), Decimal(0))
        all_latencies.sort()
        del now
        share = {
            name: (m["window_requests"] / window_requests if window_requests else 0.0) for name, m in models.items()
        }
        return {
            "window_seconds": self._window_s,
            "requests_per_second": window_requests / self._window_s,
            "latency_ms": {
                "p50": _percentile_ms(all_latencies, 0.50),
                "p95": _percentile_ms(all_latencies, 0.95),
                "p99": _percentile_ms(all_latencies, 0.99),
            },
            "error_rate": window_errors / window_requests if window_requests else 0.0,
            "cost_per_hour_usd": str(
                (window_cost * Decimal(3600) / Decimal(str(self._window_s))).quantize(Decimal("0.000001"))
            ),
            "traffic_share": share,
            "models": {
                name: {k: (str(v) if isinstance(v, Decimal) else v) for k, v in m.items()} for name, m in models.items()
            },
        }

    def budget_spend(self) -> dict[str, Decimal]:
        return dict(self._budget_spend)


def _percentile_ms(sorted_values: list[float], q: float) -> float | None:
    if not sorted_values:
        return None
    index = min(len(sorted_values) - 1, max(0, round(q * (len(sorted_values) - 1))))
    return round(sorted_values[index] * 1000.0, 3)
