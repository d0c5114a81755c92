"""The fleet's `metrics` view: this process's snapshot merged with the latest of every other
process's (received over the state layer's pub/sub, see relay.py).

Figures add up as `merge_rules` says: rates, totals and spend are summed, error rates weighted by
request rate, latency percentiles are the slowest process's (an upper bound on the fleet's). A
process whose last snapshot is older than `stale_after_s` (received time, on this process's
monotonic clock, so pods' clocks need not agree) is left out and forgotten.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from aimm_gateway.merge_rules import merge_figures


class FleetView:
    def __init__(self, pod: str) -> None:
        self.pod = pod
        self._peers: dict[str, tuple[float, dict[str, Any]]] = {}  # pod -> (received at, snapshot)

    def receive(self, pod: str, snapshot: dict[str, Any], now: float) -> None:
        if pod != self.pod and isinstance(snapshot.get("data"), Mapping):
            self._peers[pod] = (now, snapshot)

    def fresh(self, now: float, stale_after_s: float) -> dict[str, tuple[float, dict[str, Any]]]:
        """Peers heard from within `stale_after_s`; the others are dropped."""
        for pod in [p for p, (at, _) in self._peers.items() if now - at > stale_after_s]:
            del self._peers[pod]
        return self._peers

    def tail_watched(self, now: float, stale_after_s: float) -> bool:
        """Whether a live peer has a console watching the request tail (ours must feed it then)."""
        return any(s.get("tail_watchers", 0) for _, s in self.fresh(now, stale_after_s).values())

    def merge(self, own: dict[str, Any], now: float, stale_after_s: float) -> dict[str, Any]:
        """The snapshot a local `metrics` subscriber gets: the whole fleet's figures."""
        peers = self.fresh(now, stale_after_s)
        snapshots = [own, *(s for _, s in peers.values())]
        datas = [s["data"] for s in snapshots]
        data = merge_figures(datas)
        names = sorted({name for d in datas for name in d.get("models", {})})
        data["models"] = {n: merge_figures([d["models"][n] for d in datas if n in d.get("models", {})]) for n in names}
        processes = [{"pod": self.pod, "age_s": 0.0, "requests_per_second": own["data"].get("requests_per_second")}]
        processes += [
            {"pod": pod, "age_s": round(now - at, 3), "requests_per_second": s["data"].get("requests_per_second")}
            for pod, (at, s) in sorted(peers.items())
        ]
        data["fleet"] = {
            "processes": processes,
            "stale_after_s": stale_after_s,
            "latency": "the slowest process's percentiles: an upper bound on the fleet's",
        }
        return {**own, "data": data}
