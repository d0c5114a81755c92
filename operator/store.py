"""The namespace's aimm.io objects as the watch delivered them, instead of four lists per reconcile.

The operator's watch (watch.py) keeps one parsed object per custom resource in an `Index` per kind,
by namespace: no managedFields, no annotations, just what compile and status need, its strings
shared with the other objects' (objects.compact). The operator reconciles nothing until every
watch has delivered its first list, so a run after a start never compiles a partial namespace (a
gateway config missing models).

Every status write comes back as a watch event. The spec parsed for an object is kept per
generation (`Indexer`), so those events re-validate no spec: converging 5,000 models parsed 5,000
specs again, all of it garbage left to fragment the heap in the middle of the burst.

The watch lags our own status writes by a few milliseconds. A status we wrote is kept here until
the watch delivers that object at least as new (by resourceVersion), so a run never compares
against, or stamps transition times from, a status older than its own last write (which would
post an Event twice or skip a needed write).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from typing import Any

from pydantic import BaseModel

from aimm_operator.crd.aigateway import AIGatewaySpec
from aimm_operator.crd.aimodel import AIModelSpec
from aimm_operator.crd.costbudget import CostBudgetSpec
from aimm_operator.crd.routingpolicy import RoutingPolicySpec
from aimm_operator.objects import Obj, ParsedSpec, Snapshot, compact, parse, revision

INDEXED = ("AIGateway", "AIModel", "RoutingPolicy", "CostBudget")  # the kinds the operator watches
SPECS: dict[str, type[BaseModel]] = {
    "AIGateway": AIGatewaySpec,
    "AIModel": AIModelSpec,
    "RoutingPolicy": RoutingPolicySpec,
    "CostBudget": CostBudgetSpec,
}


class Indexer:
    """The parsed spec of each object for its current generation, and a change count per namespace."""

    def __init__(self) -> None:
        self._specs: dict[str, ParsedSpec] = {}  # uid -> (generation, spec, error)
        self.changes: dict[str, int] = {}  # namespace -> watch events indexed (a change counter)

    def parse(self, kind: str, body: Mapping[str, Any], namespace: str) -> Obj[Any]:
        """The parsed object (never raises: a spec that does not parse is kept with its error, as a
        list would have been)."""
        self.changes[namespace] = self.changes.get(namespace, 0) + 1
        uid = str((body.get("metadata") or {}).get("uid") or "")
        obj = parse(kind, SPECS[kind], body, self._specs.get(uid))
        if uid:
            self._specs[uid] = (obj.generation, obj.spec, obj.spec_error)
        return obj

    def forget(self, uid: str, namespace: str | None = None) -> None:
        self._specs.pop(uid, None)
        if namespace:
            self.changes[namespace] = self.changes.get(namespace, 0) + 1

    def __len__(self) -> int:
        return len(self._specs)


class Index:
    """One kind's objects as the watch knows them: namespace -> uid -> the parsed object."""

    def __init__(self) -> None:
        self._by_namespace: dict[str, dict[str, Obj[Any]]] = {}

    def put(self, obj: Obj[Any]) -> None:
        self._by_namespace.setdefault(obj.namespace, {})[obj.uid] = obj

    def remove(self, namespace: str, uid: str) -> None:
        objs = self._by_namespace.get(namespace)
        if objs is not None:
            objs.pop(uid, None)
            if not objs:
                del self._by_namespace[namespace]

    def get(self, namespace: str) -> Iterable[Obj[Any]]:
        objs = self._by_namespace.get(namespace)
        return objs.values() if objs else ()

    def __len__(self) -> int:
        return sum(len(objs) for objs in self._by_namespace.values())


def _by_name(objs: Iterable[Obj[Any]]) -> tuple[Obj[Any], ...]:
    return tuple(sorted(objs, key=lambda o: o.name))


class ObjectStore:
    """The watch's view of every kind (`watched` feeds it), plus the statuses written that the
    watch has not shown yet."""

    def __init__(self, indexer: Indexer | None = None) -> None:
        self._indexer = indexer or Indexer()
        self._indices = {kind: Index() for kind in INDEXED}
        self._written: dict[str, tuple[int, Mapping[str, Any]]] = {}  # uid -> (resourceVersion, status)

    def watched(self, kind: str, event_type: str, body: Mapping[str, Any]) -> None:
        """One watch event of `kind` (ADDED, MODIFIED or DELETED)."""
        meta = body.get("metadata") or {}
        namespace, uid = str(meta.get("namespace") or ""), str(meta.get("uid") or "")
        if not namespace:
            return
        if event_type == "DELETED":
            self._indices[kind].remove(namespace, uid)
            self.forget(uid, namespace)
        else:
            self._indices[kind].put(self._indexer.parse(kind, body, namespace))

    def objects(self, kind: str, namespace: str) -> tuple[Obj[Any], ...]:
        return _by_name(self._fresh(o) for o in self._indices[kind].get(namespace))

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
        self._indexer.forget(uid, namespace)

    def changes(self, namespace: str) -> int:
        """A count that moves whenever an object of `namespace` changes."""
        return self._indexer.changes.get(namespace, 0)

    def __len__(self) -> int:
        """Objects held, every kind and namespace (observability, tests)."""
        return sum(len(index) for index in self._indices.values())

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
