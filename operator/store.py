"""The namespace's aimm.io objects as the watch delivered them, instead of four lists per reconcile.

kopf indices (`@kopf.index`, one per kind, keyed by namespace) hold one parsed object per custom
resource: no managedFields, no annotations, just what compile and status need, its strings shared
with the other objects' (objects.compact). kopf starts no other handler until every index holds its
initial listing, so the first reconcile after a start never compiles a partial namespace (a gateway
config missing models).

Every status write comes back as a watch event. The spec parsed for an object is kept per
generation (`Indexer`), so those events re-validate no spec: converging 5,000 models parsed 5,000
specs again, all of it garbage left to fragment the heap in the middle of the burst. The index
functions are coroutines: kopf runs plain functions in its thread pool, one hop per event.

The watch lags our own status writes by a few milliseconds. A status we wrote is kept here until
the watch delivers that object at least as new (by resourceVersion), so a run never compares
against, or stamps transition times from, a status older than its own last write (which would
post an Event twice or skip a needed write).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any

from pydantic import BaseModel

from aimm_operator.crd.aigateway import AIGatewaySpec
from aimm_operator.crd.aimodel import AIModelSpec
from aimm_operator.crd.costbudget import CostBudgetSpec
from aimm_operator.crd.routingpolicy import RoutingPolicySpec
from aimm_operator.objects import Obj, ParsedSpec, Snapshot, compact, parse, revision

# kind -> (plural, the kopf index id: also the handlers' keyword argument carrying it)
INDEXED: dict[str, tuple[str, str]] = {
    "AIGateway": ("aigateways", "aimm_aigateways"),
    "AIModel": ("aimodels", "aimm_aimodels"),
    "RoutingPolicy": ("routingpolicies", "aimm_routingpolicies"),
    "CostBudget": ("costbudgets", "aimm_costbudgets"),
}
SPECS: dict[str, type[BaseModel]] = {
    "AIGateway": AIGatewaySpec,
    "AIModel": AIModelSpec,
    "RoutingPolicy": RoutingPolicySpec,
    "CostBudget": CostBudgetSpec,
}


class Indexer:
    """The kopf index functions, and the parsed spec of each object for its current generation."""

    def __init__(self) -> None:
        self._specs: dict[str, ParsedSpec] = {}  # uid -> (generation, spec, error)
        self.changes: dict[str, int] = {}  # namespace -> watch events indexed (a change counter)

    def parse(self, kind: str, body: Mapping[str, Any], namespace: str | None) -> dict[str, Obj[Any]]:
        """namespace -> the parsed object (never raises: a spec that does not parse is kept with
        its error, as a list would have been)."""
        if not namespace:
            return {}
        self.changes[namespace] = self.changes.get(namespace, 0) + 1
        uid = str((body.get("metadata") or {}).get("uid") or "")
        obj = parse(kind, SPECS[kind], body, self._specs.get(uid))
        if uid:
            self._specs[uid] = (obj.generation, obj.spec, obj.spec_error)
        return {namespace: obj}

    def of(self, kind: str) -> Callable[..., Awaitable[dict[str, Obj[Any]]]]:
        """The kopf index function of `kind`."""

        async def index(body: Mapping[str, Any], namespace: str | None, **_: Any) -> dict[str, Obj[Any]]:
            return self.parse(kind, body, namespace)

        return index

    def forget(self, uid: str, namespace: str | None = None) -> None:
        self._specs.pop(uid, None)
        if namespace:
            self.changes[namespace] = self.changes.get(namespace, 0) + 1

    def __len__(self) -> int:
        return len(self._specs)


def _by_name(objs: Iterable[Obj[Any]]) -> tuple[Obj[Any], ...]:
    return tuple(sorted(objs, key=lambda o: o.name))


class ObjectStore:
    """Read access to the kopf indices, plus the statuses written that the watch has not shown yet."""

    def __init__(self, indices: Mapping[str, Any], indexer: Indexer | None = None) -> None:
        self._indices = {kind: indices[index_id] for kind, (_, index_id) in INDEXED.items()}
        self._indexer = indexer
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
            self._written[obj.uid] = (rv, compact(dict(stored.get("status") or {})))

    def forget(self, uid: str, namespace: str | None = None) -> None:
        """The object was deleted."""
        self._written.pop(uid, None)
        if self._indexer is not None:
            self._indexer.forget(uid, namespace)

    def changes(self, namespace: str) -> int | None:
        """A count that moves whenever an object of `namespace` changes (None: not known here)."""
        return None if self._indexer is None else self._indexer.changes.get(namespace, 0)

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
