"""A route flattened into plain per-target values, built once per RouteConfig object.

Pydantic attribute access and Decimal arithmetic are too slow for a hot loop over 50 targets,
so everything a decision reads is copied here as floats/ints/frozensets, with targets sorted
by (priority, -weight, position): "candidates in static order" is then a plain subsequence.
"""

from __future__ import annotations

import math
import random

# `_operator`, not `operator`: the repo's top-level operator/ folder shadows the stdlib name
# for mypy (explicit_package_bases); at runtime both are the same C implementation.
from _operator import itemgetter
from collections.abc import Mapping, Sequence
from enum import Enum
from typing import TypeVar

from aimm_gateway.config import CircuitBreakerSettings, ModelConfig, RouteConfig
from aimm_gateway.routing.datatypes import OVER_COST, RequestFeatures, Skip, SkipKind
from aimm_gateway.routing.stats import ModelStats, SampleCounter, Tunables

_SAFE = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-:/@+")
_T = TypeVar("_T")


def header_safe(text: str, limit: int = 64) -> str:
    """Text safe inside an HTTP header value: printable ASCII subset, bounded length."""
    if len(text) <= limit and all(c in _SAFE for c in text):
        return text
    return "".join(c if c in _SAFE else "_" for c in text[:limit])


def take(seq: Sequence[_T], positions: Sequence[int]) -> tuple[_T, ...]:
    """seq[p] for p in positions, as a tuple (itemgetter does the loop in C)."""
    if len(positions) > 1:
        return itemgetter(*positions)(seq)
    return tuple(seq[p] for p in positions)


class ModelInfo:
    """Static facts of one ModelConfig, in plain types."""

    __slots__ = (
        "caps",
        "config",
        "ctx_reason",
        "enabled",
        "in_tok",
        "label",
        "name",
        "out_tok",
        "quality",
        "window",
    )

    def __init__(self, config: ModelConfig) -> None:
        self.config = config
        self.name = config.name
        self.label = header_safe(config.name)
        self.enabled = config.enabled
        self.window = config.context_window
        self.ctx_reason = Skip(SkipKind.CONTEXT_WINDOW, str(config.context_window))
        # Capability is a str Enum whose hash is its *name*: compare plain values.
        self.caps = frozenset(c.value if isinstance(c, Enum) else str(c) for c in config.capabilities)
        # Floored above zero so cost ratios never divide by zero (free models stay cheapest).
        self.in_tok = max(float(config.pricing.input_per_1k) / 1000.0, 1e-15)
        self.out_tok = max(float(config.pricing.output_per_1k) / 1000.0, 1e-15)
        self.quality = config.quality

    def lacks(self, caps: frozenset[str]) -> Skip:
        return Skip(SkipKind.MISSING_CAPABILITY, header_safe(",".join(sorted(caps - self.caps))))


class Ask:
    """What one request needs from a model, in plain numbers."""

    __slots__ = ("caps", "max_cost", "need", "out", "prompt")

    def __init__(self, features: RequestFeatures, expected_output_tokens: int) -> None:
        self.prompt = features.prompt_tokens
        max_out = features.max_output_tokens
        self.need = self.prompt + (max_out or 1)  # context: the prompt plus room to answer
        self.out = expected_output_tokens if max_out is None else max_out  # for cost estimates
        self.caps = features.required_capabilities
        self.max_cost = None if features.max_cost_usd is None else float(features.max_cost_usd)


def misfit(info: ModelInfo, ask: Ask) -> Skip | None:
    """Why this model cannot take this request, or None when it can."""
    if info.window < ask.need:
        return info.ctx_reason
    if ask.caps and not ask.caps <= info.caps:
        return info.lacks(ask.caps)
    if ask.max_cost is not None and ask.prompt * info.in_tok + ask.out * info.out_tok > ask.max_cost:
        return OVER_COST
    return None


class Candidates:
    """Targets eligible for one decision, as parallel tuples in static order, so algorithms
    iterate with zip() instead of indexing. The route's available set is cached, and so are
    its subsets for each (context-window level, capability set) a request can rule out;
    extras (weighted's cumulative weights, intelligent's cost frontier) are computed lazily
    once per cached set."""

    __slots__ = (
        "cached",
        "cum",
        "filtered",
        "in_tok",
        "infos",
        "names",
        "out_tok",
        "pareto",
        "qterm",
        "ranks",
        "single_tier",
        "stats",
        "tier_n",
        "weights",
    )

    def __init__(
        self,
        names: tuple[str, ...],
        infos: tuple[ModelInfo, ...],
        stats: tuple[ModelStats, ...],
        in_tok: tuple[float, ...],
        out_tok: tuple[float, ...],
        qterm: tuple[float, ...],
        weights: tuple[float, ...],
        ranks: tuple[int, ...],
    ) -> None:
        self.names = names
        self.infos = infos
        self.stats = stats
        self.in_tok = in_tok
        self.out_tok = out_tok
        self.qterm = qterm
        self.weights = weights
        self.ranks = ranks
        self.single_tier = not ranks or ranks[0] == ranks[-1]  # ranks ascend
        n = 1
        if self.single_tier:
            n = len(ranks)
        else:
            while ranks[n] == ranks[0]:
                n += 1
        self.tier_n = n  # leading candidates sharing the best priority
        self.cached = True  # reused across decisions (False: one request's own subset)
        self.cum: list[float] | None = None  # weighted: cumulative weights of the tier
        self.pareto: tuple[int, ...] | None = None  # intelligent: cost-minimal positions
        # (window level, caps) -> (subset, skip reasons); only on the route's available set
        self.filtered: dict[tuple[int, frozenset[str] | None], tuple[Candidates, dict[str, Skip]]] = {}

    def __len__(self) -> int:
        return len(self.names)

    def subset(self, positions: Sequence[int], *, cached: bool = False) -> Candidates:
        if len(positions) == len(self.names):
            return self
        if len(positions) > 1:
            get = itemgetter(*positions)  # one C-level gather per field
            sub = Candidates(
                get(self.names),
                get(self.infos),
                get(self.stats),
                get(self.in_tok),
                get(self.out_tok),
                get(self.qterm),
                get(self.weights),
                get(self.ranks),
            )
        else:
            sub = Candidates(
                take(self.names, positions),
                take(self.infos, positions),
                take(self.stats, positions),
                take(self.in_tok, positions),
                take(self.out_tok, positions),
                take(self.qterm, positions),
                take(self.weights, positions),
                take(self.ranks, positions),
            )
        sub.cached = cached
        return sub


class CompiledRoute:
    __slots__ = (
        "algorithm",
        "avail",
        "avail_skipped",
        "blocked",
        "common_caps",
        "cursor",
        "default_breaker",
        "epoch",
        "exploration",
        "extra_fallbacks",
        "hedge_until",
        "hedge_value",
        "infos",
        "min_window",
        "models",
        "names",
        "qterm",
        "ranks",
        "rng",
        "route",
        "samples",
        "static_skipped",
        "stats",
        "target_names",
        "tun",
        "until",
        "wa",
        "wc",
        "weights",
        "window_levels",
        "wp",
    )

    def __init__(
        self,
        route: RouteConfig,
        models: Mapping[str, ModelConfig],
        default_breaker: CircuitBreakerSettings,
        infos: list[ModelInfo],
        stats: list[ModelStats],
        weights: list[float],
        priorities: list[int],
        static_skipped: dict[str, Skip],
        cursor: int,
        rng: random.Random,
        tun: Tunables,
        samples: SampleCounter,
    ) -> None:
        self.samples = samples
        self.route = route
        self.models = models
        self.default_breaker = default_breaker
        self.rng = rng  # the state's: routing draws from one seeded stream
        self.tun = tun
        self.algorithm = route.algorithm
        self.infos = infos
        self.stats = stats
        self.names = [i.name for i in infos]
        self.weights = weights
        levels = sorted(set(priorities))
        self.ranks = [levels.index(p) for p in priorities]
        self.min_window = min((i.window for i in infos), default=0)
        self.window_levels = sorted({i.window for i in infos})
        self.common_caps = frozenset.intersection(*(i.caps for i in infos)) if infos else frozenset()
        self.static_skipped = static_skipped
        self.target_names = frozenset(t.model for t in route.targets)
        # Fallbacks that are also targets were already considered as targets.
        self.extra_fallbacks = tuple(dict.fromkeys(f for f in route.fallbacks if f not in self.target_names))
        f = route.factors
        total = f.cost + f.performance + f.quality + f.availability
        wc, wp, wq, wa = (f.cost, f.performance, f.quality, f.availability) if total > 0 else (0.3, 0.4, 0.3, 0.0)
        total = wc + wp + wq + wa
        self.wc, self.wp, self.wa = wc / total, wp / total, wa / total
        self.qterm = [wq / total * i.quality for i in infos]
        self.exploration = route.exploration
        self.cursor = cursor
        # availability cache, valid while epoch matches and now < until
        self.epoch = -1
        self.until = -math.inf
        self.avail = self.candidates([])
        self.avail_skipped: dict[str, Skip] = {}
        self.blocked: list[tuple[int, float]] = []
        self.hedge_value = 0.0
        self.hedge_until = -math.inf

    def resolves_same(self, models: Mapping[str, ModelConfig]) -> bool:
        """Whether every target resolves to the very ModelConfig objects compiled in."""
        get = models.get
        for info in self.infos:
            if get(info.name) is not info.config:
                return False
        for name in self.static_skipped:  # unknown or disabled at compile time
            m = get(name)
            if m is not None and m.enabled:
                return False
        return True

    def candidates(self, idx: list[int]) -> Candidates:
        infos = [self.infos[i] for i in idx]
        return Candidates(
            tuple(i.name for i in infos),
            tuple(infos),
            tuple(self.stats[i] for i in idx),
            tuple(i.in_tok for i in infos),
            tuple(i.out_tok for i in infos),
            tuple(self.qterm[i] for i in idx),
            tuple(self.weights[i] for i in idx),
            tuple(self.ranks[i] for i in idx),
        )
