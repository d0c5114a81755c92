"""The six routing algorithms.

Each gets the eligible candidates in static order (priority, then weight); the first
`cands.tier_n` share the best priority, and the algorithm picks among those. The others follow
by (priority, the algorithm's score), so retries go somewhere sensible too. Each returns the
ordered model names and a short, header-safe reason.

Hot path: 50 targets must cost well under 20 us in CPython, so loops are comprehensions over
parallel tuples, argmax is max()+index(), and nothing is sorted by a Python-level key.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Callable, Mapping, Sequence
from itertools import accumulate
from statistics import NormalDist
from types import MappingProxyType
from typing import Final

from aimm_gateway.routing.compiled import Candidates, CompiledRoute, take
from aimm_gateway.routing.stats import ModelStats

# (route, candidates, now, prompt tokens, expected output tokens) -> (model names, reason)
Algorithm = Callable[[CompiledRoute, Candidates, float, int, int], tuple[tuple[str, ...], str]]

_BIG: Final = 1e12  # priority rank dominates any score in composite sort keys
_EXPLORE_PERF: Final = 1.0 + 1e-9  # optimism: an unmeasured idle target wins ties with the fastest
# Standard-normal quantiles on a 4096-point grid: Thompson draws cost one table lookup.
_Z: Final = tuple(NormalDist().inv_cdf((k + 0.5) / 4096) for k in range(4096))


def _order(cands: Candidates, keys: Sequence[float], pick: int, descending: bool) -> tuple[str, ...]:
    """Names with cands[pick] first, then the rest by (priority, key); stable on ties."""
    n = len(keys)
    if n == 1:
        return cands.names
    if cands.single_tier:
        idx = sorted(range(n), key=keys.__getitem__, reverse=descending)
    else:
        ranks = cands.ranks
        if descending:
            comp = [r * _BIG - k for r, k in zip(ranks, keys, strict=False)]
        else:
            comp = [r * _BIG + k for r, k in zip(ranks, keys, strict=False)]
        idx = sorted(range(n), key=comp.__getitem__)
    if idx[0] != pick:
        idx.remove(pick)
        idx.insert(0, pick)
    return take(cands.names, idx)


def round_robin(cr: CompiledRoute, cands: Candidates, now: float, prompt: int, out: int) -> tuple[tuple[str, ...], str]:
    tier_n = cands.tier_n
    k = cr.cursor % tier_n
    cr.cursor = k + 1
    names = cands.names
    # The rest continue the rotation, so retries spread like first attempts do.
    order = names[k:tier_n] + names[:k] + names[tier_n:]
    return order, f"round_robin: {cands.infos[k].label} ({k + 1} of {tier_n} in rotation)"


def weighted(cr: CompiledRoute, cands: Candidates, now: float, prompt: int, out: int) -> tuple[tuple[str, ...], str]:
    # Weighted random rather than smooth WRR: 50 pods running the same deterministic
    # sequence would hit the heaviest target in lockstep.
    tier_n = cands.tier_n
    cum = cands.cum
    if cum is None:
        cum = cands.cum = list(accumulate(cands.weights[:tier_n]))
    total = cum[-1]
    p = min(bisect_right(cum, cr.rng.random() * total), tier_n - 1) if total > 0 else 0
    names = cands.names
    order = names[p : p + 1] + names[:p] + names[p + 1 :]
    w = cands.weights[p]
    share = w / total if total > 0 else 1.0
    return order, f"weighted: {cands.infos[p].label} (weight {w:g}, {share:.0%} of tier)"


def least_connections(
    cr: CompiledRoute, cands: Candidates, now: float, prompt: int, out: int
) -> tuple[tuple[str, ...], str]:
    tier_n = cands.tier_n
    vals = [st.in_flight for st in cands.stats]
    tier = vals[:tier_n] if tier_n < len(vals) else vals
    m = min(tier)
    # Rotate among equally loaded targets; otherwise sequential traffic all goes to the first.
    n_tied = tier.count(m)
    if n_tied == len(vals):  # all equal (e.g. all idle): a plain rotation, nothing to sort
        p = cr.cursor % n_tied
        cr.cursor = p + 1
        names = cands.names
        return names[p:] + names[:p], f"least_connections: {cands.infos[p].label} ({m} in flight)"
    ties = [j for j, v in enumerate(tier) if v == m] if n_tied > 1 else [tier.index(m)]
    p = ties[cr.cursor % len(ties)]
    cr.cursor += 1
    order = _order(cands, vals, p, descending=False)
    return order, f"least_connections: {cands.infos[p].label} ({m} in flight)"


def _probe_key(st: ModelStats) -> float:
    """response_time key of a target with no fresh measurement."""
    n = st.in_flight
    if n == 0:
        return -1.0  # untried or stale, and idle: explore it
    if st.lat_n:
        return st.lat_ewma * (n + 1)  # stale but busy: its answer will refresh it
    return 1e9 + n  # untried with requests already out: wait for their answers


def response_time(
    cr: CompiledRoute, cands: Candidates, now: float, prompt: int, out: int
) -> tuple[tuple[str, ...], str]:
    # Key = latency EWMA x (in flight + 1), as Finagle's peak-EWMA: the fastest target stops
    # looking fastest once it queues. Untried or stale idle targets get explored one request
    # at a time (not flooded), so a slow target that recovered is noticed.
    stats, tun = cands.stats, cr.tun
    # Fresh = measured within stale_after_s or within the last stale_after_samples samples.
    t0, n0 = now - tun.stale_after_s, cr.samples.n - tun.stale_after_samples
    keys = [st.lat_ewma * (st.in_flight + 1) if st.lat_t > t0 or st.lat_seq > n0 else _probe_key(st) for st in stats]
    tier_n = cands.tier_n
    m = min(keys[:tier_n]) if tier_n < len(keys) else min(keys)
    p = keys.index(m)
    st = cands.stats[p]
    if m == -1.0:
        why = "untried, exploring" if not st.lat_n else "stale, re-probing"
    else:
        why = f"ewma {st.lat_ewma * 1000:.0f}ms, {st.in_flight} in flight"
    return _order(cands, keys, p, descending=False), f"response_time: {cands.infos[p].label} ({why})"


def _pareto(ins: tuple[float, ...], outs: tuple[float, ...]) -> tuple[int, ...]:
    """Positions not dominated on (input price, output price): the cheapest candidate for any
    token mix is among them, so the per-request minimum scans a handful, not all 50."""
    front = []
    best_out = float("inf")
    for p in sorted(range(len(ins)), key=lambda p: (ins[p], outs[p])):
        if outs[p] < best_out:
            front.append(p)
            best_out = outs[p]
    return tuple(front)


def intelligent(cr: CompiledRoute, cands: Candidates, now: float, prompt: int, out: int) -> tuple[tuple[str, ...], str]:
    # score = wc*cost + wp*perf + wq*quality + wa*availability, each in [0, 1], 1 = best.
    # cost and perf are ratios to the best candidate (scale-free); quality as configured;
    # availability the decayed success rate. An unmeasured (or stale) idle target scores perf
    # 1.0 so it gets tried once; unmeasured and busy, a neutral 0.5.
    ins, outs, stats = cands.in_tok, cands.out_tok, cands.stats
    pf, of = float(prompt), float(out) or 1.0  # prices are > 0, so every cost is > 0
    front = cands.pareto
    if front is None and cands.cached:
        front = cands.pareto = _pareto(ins, outs)
    if front is None:  # a one-off subset: scanning it once beats building its frontier
        cmin = min([pf * a + of * b for a, b in zip(ins, outs, strict=False)])
    else:
        cmin = min([pf * ins[p] + of * outs[p] for p in front])
    # 0.0 = unknown: never measured, or stale (as in response_time), so it gets re-measured.
    t0, n0 = now - cr.tun.stale_after_s, cr.samples.n - cr.tun.stale_after_samples
    lats = [st.lat_ewma if st.lat_t > t0 or st.lat_seq > n0 else 0.0 for st in stats]
    lmin = min(lats)
    all_known = lmin > 0.0
    if not all_known:
        lmin = min([x for x in lats if x], default=1.0)
    wcc, wp, wa = cr.wc * cmin, cr.wp, cr.wa
    wpl = wp * lmin
    wpx = wp * _EXPLORE_PERF
    if all_known and not wa:  # the common case, kept tight
        scores = [
            wcc / (pf * a + of * b) + wpl / lat + q for a, b, lat, q in zip(ins, outs, lats, cands.qterm, strict=False)
        ]
    else:
        scores = [
            wcc / (pf * a + of * b)
            + (wpl / lat if lat else (wpx if st.in_flight == 0 else 0.5 * wp))
            + q
            + wa * st.ok_rate
            for a, b, lat, q, st in zip(ins, outs, lats, cands.qterm, stats, strict=False)
        ]
    tier_n = cands.tier_n
    best = max(scores[:tier_n]) if tier_n < len(scores) else max(scores)
    p = scores.index(best)
    st, lat = stats[p], lats[p]
    cost = pf * ins[p] + of * outs[p]
    perf = lmin / lat if lat else (_EXPLORE_PERF if st.in_flight == 0 else 0.5)
    reason = (
        f"intelligent: {cands.infos[p].label} score {best:.2f} (cost {cmin / cost:.2f} perf {perf:.2f}"
        f" quality {cands.infos[p].quality:.2f} avail {st.ok_rate:.2f}; est ${cost:.6f})"
    )
    return _order(cands, scores, p, descending=True), reason


def adaptive(cr: CompiledRoute, cands: Candidates, now: float, prompt: int, out: int) -> tuple[tuple[str, ...], str]:
    # Thompson sampling over discounted Beta posteriors of each target's reward. The Beta draw
    # is a moment-matched normal from a quantile table (one random 16-bit number per target):
    # exact betavariate costs ~3 us per target, 150 us for 50. A configurable share of traffic
    # explores uniformly so no target's estimate goes stale.
    stats, rng, tier_n = cands.stats, cr.rng, cands.tier_n
    if tier_n == 1:
        p, how = 0, "only candidate"
    elif rng.random() < cr.exploration:
        p, how = rng.randrange(tier_n), "explore"
    else:
        z = _Z
        u16 = memoryview(rng.randbytes(2 * tier_n)).cast("H")
        samples = [st.post_mean + st.post_sd * z[u >> 4] for st, u in zip(stats, u16, strict=False)]
        p, how = samples.index(max(samples)), "thompson"
    means = [st.post_mean for st in stats]
    st = stats[p]
    reason = f"adaptive: {cands.infos[p].label} ({how}, mean {st.post_mean:.2f} n={st.post_n:.0f})"
    return _order(cands, means, p, descending=True), reason


ALGORITHMS: Final[Mapping[str, Algorithm]] = MappingProxyType(
    {
        "round_robin": round_robin,
        "weighted": weighted,
        "least_connections": least_connections,
        "response_time": response_time,
        "intelligent": intelligent,
        "adaptive": adaptive,
    }
)
