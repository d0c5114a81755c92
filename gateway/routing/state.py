"""RouterState: the process-wide routing memory and the one object the pipeline talks to.

It outlives config reloads: statistics and breakers are keyed by model name, and each route is
compiled once per RouteConfig object (a reload brings new objects, hence a recompile with the
new settings, keeping what was learned). Single-threaded by design: call it from the event loop.
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping, Sequence
from decimal import Decimal

from aimm_gateway.config import CircuitBreakerSettings, ModelConfig, RetrySettings, RouteConfig
from aimm_gateway.routing.algorithms import ALGORITHMS
from aimm_gateway.routing.breaker import CircuitBreaker, is_breaker_failure
from aimm_gateway.routing.clock import Clock
from aimm_gateway.routing.compiled import Ask, CompiledRoute, ModelInfo, header_safe, misfit
from aimm_gateway.routing.datatypes import DISABLED, UNKNOWN_MODEL, Plan, RequestFeatures, Skip, TargetSnapshot
from aimm_gateway.routing.planner import (
    blocked_reason,
    blocked_retry_at,
    filter_candidates,
    refresh_availability,
    summarize,
)
from aimm_gateway.routing.retry import RetryBudget, RetryPolicy
from aimm_gateway.routing.stats import ModelStats, SampleCounter, Tunables, merged_quantile


class RouterState:
    def __init__(self, clock: Clock, rng: random.Random, tunables: Tunables | None = None) -> None:
        self._clock = clock
        self._now = clock.monotonic
        self._rng = rng
        self._tun = tunables or Tunables()
        self._default_breaker = CircuitBreakerSettings()
        self._stats: dict[str, ModelStats] = {}
        self._infos: dict[str, ModelInfo] = {}
        self._routes: dict[str, CompiledRoute] = {}
        self._budgets: dict[str, RetryBudget] = {}
        self._samples = SampleCounter()
        self._epoch = 0  # bumped whenever any breaker's admission may have changed
        self._models_hint: Mapping[str, ModelConfig] = {}  # the models of the last compiled route

    # -- planning --------------------------------------------------------------------------

    def plan(
        self,
        route: RouteConfig,
        models: Mapping[str, ModelConfig],
        features: RequestFeatures,
        default_breaker: CircuitBreakerSettings,
    ) -> Plan:
        """Models to try for a request to `route`, in order. The compiled route is cached on
        the identity of `route`, `models` and `default_breaker`: pass the config's own objects
        (a new but equivalent `models` mapping costs a ~3 us check per request)."""
        now = self._now()
        cr = self._routes.get(route.name)
        if cr is None or cr.route is not route or cr.default_breaker is not default_breaker:
            cr = self._compile(route, models, default_breaker, cr)
        elif cr.models is not models:
            # A new mapping object: recompile only if it changes what the targets resolve to.
            if cr.resolves_same(models):
                cr.models = models
            else:
                cr = self._compile(route, models, default_breaker, cr)
        if cr.epoch != self._epoch or now >= cr.until:
            refresh_availability(cr, now, self._epoch)

        ask = Ask(features, self._tun.expected_output_tokens)
        skipped = dict(cr.avail_skipped) if cr.avail_skipped else {}
        if ask.need <= cr.min_window and (not ask.caps or ask.caps <= cr.common_caps) and ask.max_cost is None:
            cands = cr.avail  # nothing about this request rules out any target
        else:
            cands = filter_candidates(cr, ask, skipped)
        attempts: tuple[str, ...] = ()
        reason = ""
        if len(cands):
            attempts, reason = ALGORITHMS[cr.algorithm](cr, cands, now, ask.prompt, ask.out)

        soonest = math.inf
        if cr.extra_fallbacks or features.fallback_model:
            chain = cr.extra_fallbacks
            if features.fallback_model:
                chain = (*chain, features.fallback_model)
            extra: list[str] = []
            soonest = self._add_fallbacks(attempts, extra, chain, models, default_breaker, now, ask, skipped)
            if extra:
                if not attempts:
                    reason = f"fallback: {self._label(extra[0])} (no route target available)"
                attempts += tuple(extra)

        retry_after = None
        if not attempts:
            at = blocked_retry_at(cr, ask)
            if at is not None:
                soonest = min(soonest, at)
            if soonest < math.inf:
                retry_after = max(0.0, soonest - now)
            reason = f"none available for {ask.need} tokens: {summarize(skipped)}"
        elif skipped:
            reason = f"{reason}; skipped {len(skipped)}"
        return Plan(attempts, reason, retry_after, skipped)

    def plan_single(
        self,
        model: ModelConfig,
        features: RequestFeatures,
        default_breaker: CircuitBreakerSettings,
        models: Mapping[str, ModelConfig] | None = None,
    ) -> Plan:
        """A request naming a model directly, then its own `fallback_model`. Pass `models` so
        the fallback resolves; without it, the models of the last planned route are used."""
        now = self._now()
        ask = Ask(features, self._tun.expected_output_tokens)
        chain = (model.name, features.fallback_model) if features.fallback_model else (model.name,)
        lookup = models if models is not None else self._models_hint
        if lookup.get(model.name) is not model:
            lookup = {**lookup, model.name: model}
        attempts: list[str] = []
        skipped: dict[str, Skip] = {}
        soonest = self._add_fallbacks((), attempts, chain, lookup, default_breaker, now, ask, skipped)
        retry_after = None
        if not attempts:
            if soonest < math.inf:
                retry_after = max(0.0, soonest - now)
            reason = f"none available for {ask.need} tokens: {summarize(skipped)}"
        elif attempts[0] == model.name:
            reason = f"direct: {self._label(model.name)}"
        else:
            reason = f"direct: {self._label(model.name)} unavailable, fallback {self._label(attempts[0])}"
        return Plan(tuple(attempts), reason, retry_after, skipped)

    def _add_fallbacks(
        self,
        planned: tuple[str, ...],
        attempts: list[str],
        chain: tuple[str, ...],
        models: Mapping[str, ModelConfig],
        default_breaker: CircuitBreakerSettings,
        now: float,
        ask: Ask,
        skipped: dict[str, Skip],
    ) -> float:
        """Append to `attempts` the models of `chain` that can take the request and are not
        `planned` already; returns the soonest retry_at among those only a breaker kept out
        (inf if none)."""
        soonest = math.inf
        for name in chain:
            if name in attempts or name in planned or name in skipped:
                continue
            config = models.get(name)
            if config is None:
                known = self._infos.get(name)
                if known is None:
                    skipped[name] = UNKNOWN_MODEL
                    continue
                config = known.config
            info = self._info(config)
            if not info.enabled:
                skipped[name] = DISABLED
                continue
            why = misfit(info, ask)
            if why is not None:
                skipped[name] = why
                continue
            st = self._stat(name)
            self._configure_breaker(st, config, None, default_breaker)
            b = st.breaker
            if not b.available(now):
                at = b.retry_at(now)
                soonest = min(soonest, now + self._tun.busy_probe_retry_s if at is None else at)
                skipped[name] = blocked_reason(b, now)
                continue
            attempts.append(name)
        return soonest

    def _compile(
        self,
        route: RouteConfig,
        models: Mapping[str, ModelConfig],
        default_breaker: CircuitBreakerSettings,
        prev: CompiledRoute | None,
    ) -> CompiledRoute:
        # Route entries override the model's own weight/priority only when set explicitly.
        merged: dict[str, list[float]] = {}
        static_skipped: dict[str, Skip] = {}
        for pos, t in enumerate(route.targets):
            m = models.get(t.model)
            if m is None:
                static_skipped[t.model] = UNKNOWN_MODEL
                continue
            if not m.enabled:
                static_skipped[t.model] = DISABLED
                continue
            weight = t.weight if "weight" in t.model_fields_set else m.weight
            prio = t.priority if "priority" in t.model_fields_set else m.priority
            if t.model in merged:  # listed twice: one target with the summed weight
                e = merged[t.model]
                e[0] += weight
                e[1] = min(e[1], prio)
            else:
                merged[t.model] = [weight, prio, pos]
        order = sorted(merged.items(), key=lambda kv: (kv[1][1], -kv[1][0], kv[1][2]))
        infos = [self._info(models[name]) for name, _ in order]
        stats = []
        for info in infos:
            st = self._stat(info.name)
            self._configure_breaker(st, info.config, route, default_breaker)
            stats.append(st)
        for name in dict.fromkeys(route.fallbacks):
            if name not in merged and name in models:
                self._configure_breaker(self._stat(name), models[name], route, default_breaker)
        cursor = prev.cursor if prev is not None else self._rng.randrange(1 << 16)
        cr = CompiledRoute(
            route,
            models,
            default_breaker,
            infos,
            stats,
            [e[0] for _, e in order],
            [int(e[1]) for _, e in order],
            static_skipped,
            cursor,
            self._rng,
            self._tun,
            self._samples,
        )
        self._routes[route.name] = cr
        self._models_hint = models
        self._epoch += 1  # settings may have changed breakers other routes share
        return cr

    def _configure_breaker(
        self, st: ModelStats, config: ModelConfig, route: RouteConfig | None, default: CircuitBreakerSettings
    ) -> None:
        """Settings for a model's breaker: the model's own, else those of a route listing it,
        else the gateway's. A breaker is per model, so a route's settings stay in place when the
        model is used directly, as a request's fallback or by a route without settings of its
        own (no flip-flopping per request). If two routes set different settings for one
        model, the last compiled wins: put such settings on the model instead."""
        if config.circuit_breaker is not None:
            settings, governor = config.circuit_breaker, None
        elif route is not None and route.circuit_breaker is not None:
            settings, governor = route.circuit_breaker, route.name
        elif st.breaker_route is not None and (route is None or route.name != st.breaker_route):
            return  # another route's settings govern this model
        else:
            settings, governor = default, None
        st.breaker_route = governor
        b = st.breaker
        v = b.version
        b.configure(settings)
        if b.version != v:
            self._epoch += 1

    def _info(self, config: ModelConfig) -> ModelInfo:
        info = self._infos.get(config.name)
        if info is None or info.config is not config:
            info = self._infos[config.name] = ModelInfo(config)
        return info

    def _stat(self, name: str) -> ModelStats:
        st = self._stats.get(name)
        if st is None:
            st = self._stats[name] = ModelStats(name, self._default_breaker, self._tun, self._clock, self._samples)
        return st

    def _label(self, name: str) -> str:
        info = self._infos.get(name)
        return info.label if info is not None else header_safe(name)

    # -- request lifecycle -----------------------------------------------------------------

    def acquire(self, model_name: str) -> bool:
        """Breaker admission just before sending; in half-open this claims a probe slot.
        False: skip this model. Every True must end in on_success/on_failure/on_cancel."""
        b = self._stat(model_name).breaker
        v = b.version
        ok = b.acquire(self._now())
        if b.version != v:
            self._epoch += 1
        return ok

    def on_start(self, model_name: str) -> None:
        self._stat(model_name).in_flight += 1

    def on_success(self, model_name: str, latency_s: float, cost_usd: Decimal) -> None:
        """`latency_s`: time to first byte for streams, whole response otherwise (what hedging
        and response_time should compare). `on_answered` and `learn` in one."""
        self.on_answered(model_name)
        self.learn(model_name, [(latency_s, float(cost_usd))])

    def on_answered(self, model_name: str) -> None:
        """A good answer, at once: in-flight -1 and the breaker's verdict (admission reads them)."""
        st = self._stat(model_name)
        if st.in_flight > 0:
            st.in_flight -= 1
        b = st.breaker
        v = b.version
        b.on_success(self._now())
        if b.version != v:
            self._epoch += 1

    def learn(self, model_name: str, answers: Sequence[tuple[float, float]]) -> None:
        """What good answers teach routing: (latency_s, cost_usd) each, in order, all as of now
        (the ledger settles the answers of one model since its last flush in one call)."""
        self._stat(model_name).record_successes(answers, self._now(), self._tun)

    def on_failure(self, model_name: str, kind: str, status: int | None, latency_s: float) -> None:
        """kind: "timeout", "connection" or "http" (with status). Client 4xx are neutral to
        health; 429 always teaches routing to go elsewhere, and trips the breaker only when
        `trip_on_429`."""
        now = self._now()
        tun = self._tun
        st = self._stat(model_name)
        if st.in_flight > 0:
            st.in_flight -= 1
        b = st.breaker
        trips = is_breaker_failure(kind, status, b.settings)
        if trips or status == 429:
            st.record_outcome(False, now, tun)
            st.reward(0.0, 1.0, now, tun)
        if kind == "timeout":
            # The time waited is a lower bound of its latency: a target that times out must
            # look slow (a fast connection error must not look fast, so only timeouts count).
            st.record_latency(latency_s, now, tun)
        v = b.version
        if trips:
            b.on_failure(now)
        else:
            b.on_release(now)
        if b.version != v:
            self._epoch += 1

    def on_cancel(self, model_name: str) -> None:
        """Ended without a verdict (hedge loser, client gone): in-flight -1, probe slot freed."""
        st = self._stat(model_name)
        if st.in_flight > 0:
            st.in_flight -= 1
        b = st.breaker
        v = b.version
        b.on_release(self._now())
        if b.version != v:
            self._epoch += 1

    def feedback(self, model_name: str, score: float) -> None:
        """Client feedback in [0, 1] for the adaptive algorithm (1 = great answer)."""
        if not 0.0 <= score <= 1.0:  # also rejects NaN
            raise ValueError("feedback score must be within 0..1")
        self._stat(model_name).reward(score, self._tun.feedback_weight, self._now(), self._tun)

    # -- status, hedging, retries ----------------------------------------------------------

    def circuits(self) -> dict[str, tuple[str, int]]:
        """Each known target's circuit state and requests in flight: what health views need, without
        `snapshot`'s latency quantiles (150 buckets merged per model: ~30 ms at 1,000 models, on
        every scrape and stats poll)."""
        now = self._now()
        return {name: (st.breaker.state_at(now), st.in_flight) for name, st in self._stats.items()}

    def snapshot(self) -> dict[str, TargetSnapshot]:
        now = self._now()
        out = {}
        for name, st in self._stats.items():
            b = st.breaker
            out[name] = TargetSnapshot(
                model=name,
                circuit_state=b.state_at(now),
                retry_at=b.retry_at(now),
                in_flight=st.in_flight,
                latency_ewma_s=st.lat_ewma if st.lat_n else None,
                latency_p95_s=st.hist.quantile(0.95, now),
                success_rate=st.ok_rate,
                successes=st.successes,
                failures=st.failures,
                consecutive_failures=b.consecutive_failures,
                times_opened=b.opened,
                adaptive_mean=st.post_mean,
            )
        return out

    def breaker(self, model_name: str) -> CircuitBreaker:
        """The model's breaker (`.state`, `.retry_at()`), for status pages and metrics."""
        return self._stat(model_name).breaker

    def hedge_delay_s(self, route: RouteConfig) -> float:
        """How long to wait before hedging: the configured delay, else the route's recent p95
        (never below a floor), else a default until there is enough data."""
        if route.hedging.delay_s is not None:
            return route.hedging.delay_s
        now = self._now()
        tun = self._tun
        cr = self._routes.get(route.name)
        if cr is not None and cr.route is route:
            if now < cr.hedge_until:
                return cr.hedge_value
            hists = [st.hist for st in cr.stats]
        else:
            hists = [self._stats[t.model].hist for t in route.targets if t.model in self._stats]
        q = merged_quantile(hists, 0.95, now, tun.hedge_min_samples)
        value = tun.hedge_default_s if q is None else max(tun.hedge_floor_s, q)
        if cr is not None and cr.route is route:
            cr.hedge_value, cr.hedge_until = value, now + tun.hedge_refresh_s
        return value

    def retry_budget(self, key: str, settings: RetrySettings) -> RetryBudget:
        """The retry budget for a route (by route name) or a directly named model."""
        budget = self._budgets.get(key)
        if budget is None:
            budget = self._budgets[key] = RetryBudget(settings.budget_ratio, self._clock)
        budget.ratio = settings.budget_ratio
        return budget

    def retry_policy(self, settings: RetrySettings) -> RetryPolicy:
        return RetryPolicy(settings, self._rng)
