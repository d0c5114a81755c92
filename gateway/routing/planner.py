"""Planning helpers: which targets can take a request now, and why the others cannot."""

from __future__ import annotations

import math
from bisect import bisect_left

from aimm_gateway.routing.breaker import OPEN, CircuitBreaker
from aimm_gateway.routing.compiled import Ask, Candidates, CompiledRoute, header_safe, misfit
from aimm_gateway.routing.datatypes import CIRCUIT_OPEN, OVER_COST, PROBES_BUSY, Skip

_FILTER_CACHE_MAX = 128  # (window level, capability set) subsets kept per availability snapshot


def blocked_reason(b: CircuitBreaker, now: float) -> Skip:
    return CIRCUIT_OPEN if b.state_at(now) == OPEN else PROBES_BUSY


def refresh_availability(cr: CompiledRoute, now: float, epoch: int) -> None:
    """Recompute which targets their breakers admit. Cached on the route until a breaker
    changes (epoch) or an open one is due to go half-open (until)."""
    avail: list[int] = []
    skipped = dict(cr.static_skipped)
    blocked: list[tuple[int, float]] = []
    until = math.inf
    for i, st in enumerate(cr.stats):
        b = st.breaker
        if b.available(now):
            avail.append(i)
            continue
        retry_at = b.retry_at(now)
        at = now if retry_at is None else retry_at
        blocked.append((i, at))
        until = min(until, at)
        skipped[cr.names[i]] = blocked_reason(b, now)
    cr.avail = cr.candidates(avail)
    cr.avail_skipped = skipped
    cr.blocked = blocked
    cr.epoch = epoch
    cr.until = until


def filter_candidates(cr: CompiledRoute, ask: Ask, skipped: dict[str, Skip]) -> Candidates:
    """The available targets that fit this request; the others go to `skipped` with a reason.

    Context window and capabilities rule out the same targets for every request at the same
    window level (windows take few distinct values) and capability set, so that part is cached
    per availability snapshot; only a max-cost ceiling is evaluated per request.
    """
    av = cr.avail
    levels = cr.window_levels
    level = bisect_left(levels, ask.need) if ask.need > cr.min_window else 0
    caps = ask.caps if ask.caps and not ask.caps <= cr.common_caps else None
    cands = av
    if level or caps is not None:
        key = (level, caps)
        hit = av.filtered.get(key)
        if hit is None:
            if len(av.filtered) >= _FILTER_CACHE_MAX:
                av.filtered.clear()
            floor = levels[level] if level < len(levels) else math.inf
            keep: list[int] = []
            why: dict[str, Skip] = {}
            for p, info in enumerate(av.infos):
                if info.window < floor:
                    why[info.name] = info.ctx_reason
                elif caps is not None and not caps <= info.caps:
                    why[info.name] = info.lacks(caps)
                else:
                    keep.append(p)
            hit = av.filtered[key] = (av.subset(keep, cached=True), why)
        cands = hit[0]
        skipped.update(hit[1])
    max_cost = ask.max_cost
    if max_cost is not None and len(cands):
        pf, of = float(ask.prompt), float(ask.out)
        costs = [pf * a + of * b for a, b in zip(cands.in_tok, cands.out_tok, strict=False)]
        if max(costs) > max_cost:
            # A constant reason: formatting each estimate would cost more than the decision.
            for name, est in zip(cands.names, costs, strict=False):
                if est > max_cost:
                    skipped[name] = OVER_COST
            cands = cands.subset([p for p, est in enumerate(costs) if est <= max_cost])
    return cands


def blocked_retry_at(cr: CompiledRoute, ask: Ask) -> float | None:
    """Soonest time a breaker-blocked target that *would fit* this request admits again."""
    soonest = math.inf
    for c, at in cr.blocked:
        if at < soonest and misfit(cr.infos[c], ask) is None:
            soonest = at
    return None if soonest == math.inf else soonest


def summarize(skipped: dict[str, Skip], limit: int = 3) -> str:
    """A short, header-safe account of why nothing could be tried."""
    if not skipped:
        return "no targets"
    items = list(skipped.items())
    parts = [f"{header_safe(name)}: {why}" for name, why in items[:limit]]
    if len(items) > limit:
        parts.append(f"+{len(items) - limit} more")
    return "; ".join(parts)
