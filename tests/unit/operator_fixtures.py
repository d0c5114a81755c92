"""Builders of custom-resource bodies for the operator's pure unit tests."""

from __future__ import annotations

from typing import Any

from aimm_operator.objects import Snapshot


def body(
    kind: str,
    name: str,
    spec: dict[str, Any],
    labels: dict[str, str] | None = None,
    status: dict[str, Any] | None = None,
    generation: int = 1,
    ns: str = "ns",
) -> dict[str, Any]:
    return {
        "apiVersion": "aimm.io/v1alpha1",
        "kind": kind,
        "metadata": {
            "name": name,
            "namespace": ns,
            "uid": f"uid-{name}",
            "generation": generation,
            "labels": labels or {},
        },
        "spec": spec,
        "status": status or {},
    }


def gw(name: str = "gw", **spec: Any) -> dict[str, Any]:
    return body("AIGateway", name, spec)


def model(name: str, provider: str = "mock", labels: dict[str, str] | None = None, **spec: Any) -> dict[str, Any]:
    return body("AIModel", name, {"provider": provider, "model": spec.pop("upstream", name), **spec}, labels)


def policy(name: str, routes: list[dict[str, Any]], labels: dict[str, str] | None = None, **spec: Any) -> dict:
    return body("RoutingPolicy", name, {"routes": routes, **spec}, labels)


def budget(name: str, limit: float = 10, **spec: Any) -> dict[str, Any]:
    return body("CostBudget", name, {"limitUSD": limit, **spec})


def route(name: str, *targets: str, **extra: Any) -> dict[str, Any]:
    return {"name": name, "targets": [{"model": t} for t in targets], **extra}


def snapshot(
    gateways: list[dict] | None = None,
    models: list[dict] | None = None,
    policies: list[dict] | None = None,
    budgets: list[dict] | None = None,
) -> Snapshot:
    return Snapshot.from_bodies("ns", gateways or [gw()], models or [], policies or [], budgets or [])
