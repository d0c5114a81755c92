"""Typed views of the custom resources the operator reads (metadata + parsed spec)."""

from __future__ import annotations

import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from pydantic import BaseModel, ValidationError

from aimm_gateway.config import describe_validation_error
from aimm_operator.crd.aigateway import AIGatewaySpec
from aimm_operator.crd.aimodel import AIModelSpec
from aimm_operator.crd.costbudget import CostBudgetSpec
from aimm_operator.crd.routingpolicy import RoutingPolicySpec

S = TypeVar("S", bound=BaseModel)


@dataclass(frozen=True)
class Obj(Generic[S]):
    """One custom resource: identity, labels, the parsed spec (or why it did not parse), raw status."""

    kind: str
    name: str
    namespace: str
    uid: str
    generation: int
    labels: Mapping[str, str]
    spec: S | None
    spec_error: str | None = None
    status: Mapping[str, Any] = field(default_factory=dict)
    deleting: bool = False
    created: str = ""  # metadata.creationTimestamp (RFC 3339 sorts as text)
    resource_version: int = 0  # metadata.resourceVersion (etcd's revision; 0 when not a number)
    # Derived facts computed once per object (e.g. its spec's problem); not part of its identity.
    memo: dict[str, Any] = field(default_factory=dict, compare=False, hash=False, repr=False)

    @property
    def conditions(self) -> list[dict[str, Any]]:
        return list(self.status.get("conditions") or [])


ParsedSpec = tuple[int, Any, str | None]  # (generation, the spec or None, why it did not parse)
SHARED_STRING_MAX = 256  # longer strings (rare: long messages) are not worth a lookup


def compact(value: Any) -> Any:
    """A copy of decoded JSON whose strings are shared across objects (sys.intern). Thousands of
    statuses repeat the same keys, reasons, messages and timestamps; each watch event decodes its
    own copies, which an index would otherwise keep for as long as the object lives."""
    if isinstance(value, str):
        return sys.intern(value) if len(value) <= SHARED_STRING_MAX else value
    if isinstance(value, dict):
        return {sys.intern(k) if isinstance(k, str) else k: compact(v) for k, v in value.items()}
    if isinstance(value, list):
        return [compact(v) for v in value]
    return value


def parse_spec(spec_type: type[S], body: Mapping[str, Any]) -> tuple[S | None, str | None]:
    try:
        return spec_type.model_validate(body.get("spec") or {}), None
    except ValidationError as exc:
        return None, describe_validation_error(exc)


def parse(kind: str, spec_type: type[S], body: Mapping[str, Any], known: ParsedSpec | None = None) -> Obj[S]:
    """The object of `body`; `known` is its spec parsed before, reused when the generation is the
    same (the spec cannot have changed: a status write or a label edit does not bump it)."""
    meta = body.get("metadata") or {}
    generation = int(meta.get("generation") or 0)
    spec: S | None
    error: str | None
    if known is not None and known[0] == generation and generation:
        spec, error = known[1], known[2]
    else:
        spec, error = parse_spec(spec_type, body)
    return Obj(
        kind=kind,
        name=meta.get("name", ""),
        namespace=meta.get("namespace", ""),
        uid=meta.get("uid", ""),
        generation=generation,
        labels=compact(dict(meta.get("labels") or {})),
        spec=spec,
        spec_error=error,
        status=compact(dict(body.get("status") or {})),
        deleting=bool(meta.get("deletionTimestamp")),
        created=str(meta.get("creationTimestamp") or ""),
        resource_version=revision(meta),
    )


def revision(meta: Mapping[str, Any]) -> int:
    """resourceVersion as a number: opaque by contract, etcd's revision in practice (0 otherwise)."""
    rv = str(meta.get("resourceVersion") or "")
    return int(rv) if rv.isdigit() else 0


Gateway = Obj[AIGatewaySpec]
Model = Obj[AIModelSpec]
Policy = Obj[RoutingPolicySpec]
Budget = Obj[CostBudgetSpec]


def parse_gateway(body: Mapping[str, Any]) -> Gateway:
    return parse("AIGateway", AIGatewaySpec, body)


def parse_model(body: Mapping[str, Any]) -> Model:
    return parse("AIModel", AIModelSpec, body)


def parse_policy(body: Mapping[str, Any]) -> Policy:
    return parse("RoutingPolicy", RoutingPolicySpec, body)


def parse_budget(body: Mapping[str, Any]) -> Budget:
    return parse("CostBudget", CostBudgetSpec, body)


@dataclass(frozen=True)
class Snapshot:
    """Everything in one namespace the gateway configs are compiled from."""

    namespace: str
    gateways: tuple[Gateway, ...] = ()
    models: tuple[Model, ...] = ()
    policies: tuple[Policy, ...] = ()
    budgets: tuple[Budget, ...] = ()

    @classmethod
    def from_bodies(
        cls,
        namespace: str,
        gateways: Sequence[Mapping[str, Any]],
        models: Sequence[Mapping[str, Any]],
        policies: Sequence[Mapping[str, Any]],
        budgets: Sequence[Mapping[str, Any]],
    ) -> Snapshot:
        def by_name(objs: list[Obj[Any]]) -> tuple[Obj[Any], ...]:
            return tuple(sorted(objs, key=lambda o: o.name))

        return cls(
            namespace=namespace,
            gateways=by_name([parse_gateway(b) for b in gateways]),
            models=by_name([parse_model(b) for b in models]),
            policies=by_name([parse_policy(b) for b in policies]),
            budgets=by_name([parse_budget(b) for b in budgets]),
        )
