"""Per-model live statistics: in-flight count, latency, success rate, bandit posterior.

Everything decays with time so routing follows what a model does now, not what it did an hour
ago. Updates happen once per finished request; reads happen on every routing decision, so the
values routing reads are kept ready as plain attributes.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Final

from aimm_gateway.config import CircuitBreakerSettings
from aimm_gateway.routing.breaker import CircuitBreaker
from aimm_gateway.routing.clock import Clock

_BASE: Final = 0.001  # histogram bucket 0 is [0, 1 ms)
_RATIO: Final = 1.1  # each bucket 10% wider: quantiles within 10%
_NBUCKETS: Final = 150  # up to ~1.4e3 s
_INV_LOG_RATIO: Final = 1.0 / math.log(_RATIO)


@dataclass(frozen=True, slots=True)
class Tunables:
    """Knobs that are engineering choices, not product config. Defaults are what we run."""

    latency_alpha: float = 0.2  # each latency sample moves the EWMA at least this much
    latency_tau_s: float = 30.0  # and older samples fade with this time constant
    stale_after_s: float = 30.0  # an idle target measured longer ago than this ...
    stale_after_samples: int = 20  # ... and than this many samples (any model) is re-probed
    success_alpha: float = 0.05  # success-rate EWMA weight per outcome
    success_tau_s: float = 60.0
    hist_tau_s: float = 120.0  # latency histogram (p95 for hedging) decay
    expected_output_tokens: int = 256  # cost estimate when a request sets no max output
    bandit_discount: float = 0.98  # per-update: posteriors remember ~50 outcomes
    bandit_tau_s: float = 600.0  # and forget with time, so idle targets become uncertain again
    feedback_weight: float = 2.0  # client feedback counts as this many outcomes
    adaptive_latency_weight: float = 0.2  # reward = 1 - lw*lat/(lat+ref) - cw*cost/(cost+ref)
    adaptive_ref_latency_s: float = 5.0
    adaptive_cost_weight: float = 0.1
    adaptive_ref_cost_usd: float = 0.01
    hedge_floor_s: float = 0.05
    hedge_default_s: float = 1.0  # hedge delay before a route has enough latency data
    hedge_min_samples: float = 10.0
    hedge_refresh_s: float = 1.0  # the route p95 is recomputed at most this often
    busy_probe_retry_s: float = 1.0  # Retry-After when only busy half-open probes block


class SampleCounter:
    """Latency samples recorded process-wide: staleness is judged in traffic as well as in
    time, so a quiet gateway does not spend half its requests re-probing slow targets."""

    __slots__ = ("n",)

    def __init__(self) -> None:
        self.n = 0


class LatencyHistogram:
    """Log-bucketed latency counts with exponential time decay (for p95).

    Decay is applied lazily in batches: counts are scaled only when the pending factor has
    drifted by 1%, so an add is O(1) almost always.
    """

    __slots__ = ("counts", "t", "tau", "total")

    def __init__(self, tau_s: float) -> None:
        self.counts = [0.0] * _NBUCKETS
        self.total = 0.0
        self.t = 0.0  # counts are decayed up to this time
        self.tau = tau_s

    def add(self, x: float, now: float) -> None:
        if now - self.t > 0.01 * self.tau:
            f = math.exp((self.t - now) / self.tau)
            self.counts = [c * f for c in self.counts]
            self.total *= f
            self.t = now
        b = int(math.log(x / _BASE) * _INV_LOG_RATIO) + 1 if x >= _BASE else 0
        self.counts[min(b, _NBUCKETS - 1)] += 1.0
        self.total += 1.0

    def weight_at(self, now: float) -> float:
        return math.exp((self.t - now) / self.tau)

    def quantile(self, q: float, now: float, min_count: float = 1.0) -> float | None:
        return merged_quantile((self,), q, now, min_count)


def merged_quantile(hists: Iterable[LatencyHistogram], q: float, now: float, min_count: float = 1.0) -> float | None:
    """The q-quantile of several histograms together (traffic-weighted), or None if too few."""
    merged = [0.0] * _NBUCKETS
    total = 0.0
    for h in hists:
        if not h.total:
            continue
        f = h.weight_at(now)
        total += h.total * f
        merged = [m + c * f for m, c in zip(merged, h.counts, strict=True)]
    if total < min_count or total <= 0:
        return None
    target = q * total
    run = 0.0
    for i, c in enumerate(merged):
        if c and run + c >= target:
            frac = (target - run) / c
            if i == 0:
                return _BASE * frac
            lo = _BASE * _RATIO ** (i - 1)
            return float(lo * _RATIO**frac)  # geometric interpolation inside the bucket
        run += c
    return float(_BASE * _RATIO ** (_NBUCKETS - 1))


class ModelStats:
    """Everything routing knows about one model; lives across config reloads."""

    __slots__ = (
        "alpha",
        "beta",
        "breaker",
        "breaker_route",
        "cost_ewma",
        "failures",
        "hist",
        "in_flight",
        "lat_ewma",
        "lat_n",
        "lat_seq",
        "lat_t",
        "name",
        "ok_rate",
        "ok_t",
        "post_mean",
        "post_n",
        "post_sd",
        "post_t",
        "samples",
        "successes",
    )

    def __init__(
        self,
        name: str,
        settings: CircuitBreakerSettings,
        tunables: Tunables,
        clock: Clock,
        samples: SampleCounter,
    ) -> None:
        self.name = name
        self.samples = samples
        self.breaker = CircuitBreaker(settings, clock)
        self.breaker_route: str | None = None  # the route whose circuit_breaker settings apply
        self.in_flight = 0
        self.lat_ewma = 0.0  # seconds; 0.0 = never measured
        self.lat_n = 0
        self.lat_t = -math.inf  # time of the last sample; never measured reads as stale
        self.lat_seq = -math.inf  # SampleCounter value at the last sample
        self.ok_rate = 1.0  # optimistic until told otherwise
        self.ok_t = 0.0
        self.successes = 0
        self.failures = 0
        self.cost_ewma = 0.0
        self.hist = LatencyHistogram(tunables.hist_tau_s)
        self.alpha = 1.0  # Beta(1, 1): uniform prior
        self.beta = 1.0
        self.post_t = 0.0
        self.post_mean = 0.5
        self.post_sd = math.sqrt(1 / 12)
        self.post_n = 0.0

    def record_latency(self, latency_s: float, now: float, tun: Tunables) -> None:
        x = max(latency_s, 1e-6)  # 0.0 would read as "unknown"
        if self.lat_n == 0:
            self.lat_ewma = x
        else:
            keep = (1.0 - tun.latency_alpha) * math.exp(min(0.0, self.lat_t - now) / tun.latency_tau_s)
            self.lat_ewma = self.lat_ewma * keep + x * (1.0 - keep)
        self.lat_n += 1
        self.lat_t = now
        self.samples.n += 1
        self.lat_seq = self.samples.n

    def record_outcome(self, ok: bool, now: float, tun: Tunables) -> None:
        keep = (1.0 - tun.success_alpha) * math.exp(min(0.0, self.ok_t - now) / tun.success_tau_s)
        self.ok_rate = self.ok_rate * keep + (1.0 - keep) * (1.0 if ok else 0.0)
        self.ok_t = now
        if ok:
            self.successes += 1
        else:
            self.failures += 1

    def reward(self, reward: float, weight: float, now: float, tun: Tunables) -> None:
        """Discounted Beta update with a fractional reward in [0, 1].

        Old evidence is discounted per update and with time, towards the Beta(1, 1) prior, so
        a target that was best but degraded loses its lead within tens of outcomes.
        """
        r = min(1.0, max(0.0, reward))
        d = tun.bandit_discount * math.exp(min(0.0, self.post_t - now) / tun.bandit_tau_s)
        a = 1.0 + (self.alpha - 1.0) * d + weight * r
        b = 1.0 + (self.beta - 1.0) * d + weight * (1.0 - r)
        self.alpha, self.beta, self.post_t = a, b, now
        n = a + b
        self.post_mean = a / n
        self.post_sd = math.sqrt(a * b / (n * n * (n + 1.0)))
        self.post_n = n - 2.0

    def record_successes(self, answers: Sequence[tuple[float, float]], now: float, tun: Tunables) -> None:
        """(latency_s, cost_usd) of good answers, in order, all at `now`: the same result as, for
        each, `record_latency`, `hist.add`, `record_outcome(True)`, the cost EWMA and `reward`,
        with each time decay computed once (at one instant only the first answer decays)."""
        if not answers:
            return
        lat_keep = (1.0 - tun.latency_alpha) * math.exp(min(0.0, self.lat_t - now) / tun.latency_tau_s)
        ok_keep = (1.0 - tun.success_alpha) * math.exp(min(0.0, self.ok_t - now) / tun.success_tau_s)
        d = tun.bandit_discount * math.exp(min(0.0, self.post_t - now) / tun.bandit_tau_s)
        ewma, ok_rate, cost_ewma, a, b = self.lat_ewma, self.ok_rate, self.cost_ewma, self.alpha, self.beta
        first_ever, hist = self.successes == 0, self.hist
        for latency_s, cost_usd in answers:
            x = max(latency_s, 1e-6)  # 0.0 would read as "unknown"
            ewma = x if self.lat_n == 0 else ewma * lat_keep + x * (1.0 - lat_keep)
            self.lat_n += 1
            hist.add(latency_s, now)
            ok_rate = ok_rate * ok_keep + (1.0 - ok_keep)
            cost_ewma = cost_usd if first_ever else cost_ewma * 0.9 + cost_usd * 0.1
            r = min(1.0, max(0.0, self.success_reward(latency_s, cost_usd, tun)))
            a, b = 1.0 + (a - 1.0) * d + r, 1.0 + (b - 1.0) * d + (1.0 - r)
            lat_keep, ok_keep, d = 1.0 - tun.latency_alpha, 1.0 - tun.success_alpha, tun.bandit_discount
            first_ever = False
        self.lat_ewma, self.lat_t, self.ok_rate, self.ok_t, self.cost_ewma = ewma, now, ok_rate, now, cost_ewma
        self.samples.n += len(answers)
        self.lat_seq = self.samples.n
        self.successes += len(answers)
        self.alpha, self.beta, self.post_t = a, b, now
        n = a + b
        self.post_mean = a / n
        self.post_sd = math.sqrt(a * b / (n * n * (n + 1.0)))
        self.post_n = n - 2.0

    def success_reward(self, latency_s: float, cost_usd: float, tun: Tunables) -> float:
        lat = max(latency_s, 0.0)
        cost = max(cost_usd, 0.0)
        return (
            1.0
            - tun.adaptive_latency_weight * lat / (lat + tun.adaptive_ref_latency_s)
            - tun.adaptive_cost_weight * cost / (cost + tun.adaptive_ref_cost_usd)
        )
