"""Builders for the custom resources the operator tests create."""

from __future__ import annotations

from typing import Any

API = "aimm.io/v1alpha1"


def _obj(kind: str, ns: str, name: str, spec: dict[str, Any], labels: dict[str, str] | None = None) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "namespace": ns}
    if labels:
        meta["labels"] = labels
    return {"apiVersion": API, "kind": kind, "metadata": meta, "spec": spec}


def gateway(ns: str, name: str = "gw", labels: dict[str, str] | None = None, **spec: Any) -> dict[str, Any]:
    return _obj("AIGateway", ns, name, spec, labels)


def model(
    ns: str,
    name: str,
    provider: str = "mock",
    upstream: str | None = None,
    labels: dict[str, str] | None = None,
    **spec: Any,
) -> dict[str, Any]:
    return _obj("AIModel", ns, name, {"provider": provider, "model": upstream or name, **spec}, labels)


def policy(
    ns: str, name: str, routes: list[dict[str, Any]], labels: dict[str, str] | None = None, **spec: Any
) -> dict[str, Any]:
    return _obj("RoutingPolicy", ns, name, {"routes": routes, **spec}, labels)


def budget(ns: str, name: str, limit: float, **spec: Any) -> dict[str, Any]:
    return _obj("CostBudget", ns, name, {"limitUSD": limit, **spec})


def route(name: str, *targets: str | tuple[str, float], **extra: Any) -> dict[str, Any]:
    ts = []
    for t in targets:
        if isinstance(t, tuple):
            ts.append({"model": t[0], "weight": t[1]})
        else:
            ts.append({"model": t})
    return {"name": name, "targets": ts, **extra}
