"""The namespace's aimm.io objects as the watch delivered them, instead of four lists per reconcile.

kopf indices (`@kopf.index`, one per kind, keyed by namespace) hold one parsed object per custom
resource: no managedFields, no annotations, just what compile and status need. kopf starts no other
handler until every index holds its initial listing, so the first reconcile after a start never
compiles a partial namespace (a gateway config missing models).

The watch lags our own status writes by a few milliseconds. A status we wrote is kept here until
the watch delivers that object at least as new (by resourceVersion), so a run never compares
against, or stamps transition times from, a status older than its own last write (which would
post an Event twice or skip a needed write).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from aimm_operator.objects import Obj, Snapshot, parse_budget, parse_gateway, parse_model, parse_policy, revision

# kind -> (plural, the kopf index id: also the handlers' keyword argument carrying it)
INDEXED: dict[str, tuple[str, str]] = {
    "AIGateway": ("aigateways", "aimm_aigateways"),
    "AIModel": ("aimodels", "aimm_aimodels"),
    "RoutingPolicy": ("routingpolicies", "aimm_routingpolicies"),
    "CostBudget": ("costbudgets", "aimm_costbudgets"),
}
PARSERS: dict[str, Callable[[Mapping[str, Any]], Obj[Any]]] = {
    "AIGateway": parse_gateway,
    "AIModel": parse_model,
    "RoutingPolicy": parse_policy,
    "CostBudget": parse_budget,
}


def indexer(kind: str) -> Callable[..., dict[str, Obj[Any]]]:
    """The kopf index function of `kind`: namespace -> the parsed object (never raises: a spec
    that does not parse is kept with its error, as a list would have been)."""
    parse = PARSERS[kind]

    def index(body: Mapping[str, Any], namespace: str | None, **_: Any) -> dict[str, Obj[Any]]:
        return {namespace: parse(body)} if namespace else {}

    return index


def _by_name(objs: Iterable[Obj[Any]]) -> tuple[Obj[Any], ...]:
    return tuple(sorted(objs, key=lambda o: o.name))


class ObjectStore:
    """Read access to the kopf indices, plus the statuses written that the watch has not shown yet."""

    def __init__(self, indices: Mapping[str, Any]) -> None:
        self._indices = {kind: indices[index_id] for kind, (_, index_id) in INDEXED.items()}
        self._written: dict[str, tuple[int, Mapping[str, Any]]] = {}  # uid -> (resourceVersion, status)

    def objects(self, kind: str, namespace: str) -> tuple[Obj[Any], ...]:
        return _by_name(self._fresh(o) for o in self._indices[kind].get(namespace) or ())

    def snapshot(self, namespace: str) -> Snapshot:
        return Snapshot(
            namespace=namespace,
            gateways=self.objects("AIGateway", namespace),
            models=self.objects("AIModel", namespace),
            policies=self.objects("RoutingPolicy", namespace),
            budgets=self.objects("CostBudget", namespace),
        )

    def wrote(self, obj: Obj[Any], stored: Mapping[str, Any] | None) -> None:
        """Record the object as the API server returned it from our status write."""
        if stored is None:
            return
        rv = revision(stored.get("metadata") or {})
        if rv > max(obj.resource_version, self._written.get(obj.uid, (0, {}))[0]):
            self._written[obj.uid] = (rv, dict(stored.get("status") or {}))

    def forget(self, uid: str) -> None:
        self._written.pop(uid, None)

    def pending(self) -> int:
        """Written statuses the watch has not delivered yet (observability, tests)."""
        return len(self._written)

    def _fresh(self, obj: Obj[Any]) -> Obj[Any]:
        written = self._written.get(obj.uid)
        if written is None:
            return obj
        rv, status = written
        if obj.resource_version >= rv:  # the watch caught up (or moved past our write)
            del self._written[obj.uid]
            return obj
        return dataclasses.replace(obj, status=status, resource_version=rv)
