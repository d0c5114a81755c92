"""Generate the CustomResourceDefinitions from the pydantic models (`aimm crds`).

The models are walked field by field into structural OpenAPI v3 schemas: every field carries
its description (so `kubectl explain` documents it), its default, its bounds, and the CEL rules
(`x-kubernetes-validations`) attached to it. A field without a description is an error.
"""

from __future__ import annotations

import types
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Any, Literal, Union, get_args, get_origin

import annotated_types as at
import yaml
from pydantic import BaseModel
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from aimm_operator.crd.aigateway import AIGatewayResource
from aimm_operator.crd.aimodel import AIModelResource
from aimm_operator.crd.common import GROUP, VERSION
from aimm_operator.crd.costbudget import CostBudgetResource
from aimm_operator.crd.routingpolicy import RoutingPolicyResource


class SchemaError(Exception):
    """A model cannot be expressed as a structural schema (or lacks a description)."""


@dataclass(frozen=True)
class Kind:
    kind: str
    plural: str
    singular: str
    short: str
    model: type[BaseModel]
    columns: tuple[dict[str, Any], ...]

    @property
    def crd_name(self) -> str:
        return f"{self.plural}.{GROUP}"


def _cond(name: str, cond: str = "Ready") -> dict[str, Any]:
    return {"name": name, "type": "string", "jsonPath": f'.status.conditions[?(@.type=="{cond}")].status'}


_AGE = {"name": "AGE", "type": "date", "jsonPath": ".metadata.creationTimestamp"}

KINDS: tuple[Kind, ...] = (
    Kind(
        "AIGateway",
        "aigateways",
        "aigateway",
        "aigw",
        AIGatewayResource,
        (
            _cond("READY"),
            {"name": "REPLICAS", "type": "integer", "jsonPath": ".status.replicas"},
            {"name": "AVAILABLE", "type": "integer", "jsonPath": ".status.readyReplicas"},
            {"name": "MODELS", "type": "integer", "jsonPath": ".status.models"},
            {"name": "ENDPOINT", "type": "string", "jsonPath": ".status.endpoint"},
            {"name": "CONFIG", "type": "string", "jsonPath": ".status.configHash", "priority": 1},
            _AGE,
        ),
    ),
    Kind(
        "AIModel",
        "aimodels",
        "aimodel",
        "aim",
        AIModelResource,
        (
            {"name": "PROVIDER", "type": "string", "jsonPath": ".spec.provider"},
            {"name": "MODEL", "type": "string", "jsonPath": ".spec.model"},
            {"name": "ENABLED", "type": "boolean", "jsonPath": ".spec.enabled"},
            _cond("READY"),
            {"name": "CIRCUIT", "type": "string", "jsonPath": ".status.circuitState"},
            {"name": "P95", "type": "string", "jsonPath": ".status.p95Latency"},
            {"name": "ERRORS", "type": "string", "jsonPath": ".status.errorRate"},
            {"name": "COST", "type": "string", "jsonPath": ".status.costThisPeriod"},
            {"name": "RPM", "type": "number", "jsonPath": ".status.requestsPerMinute", "priority": 1},
            _AGE,
        ),
    ),
    Kind(
        "RoutingPolicy",
        "routingpolicies",
        "routingpolicy",
        "rp",
        RoutingPolicyResource,
        (
            {"name": "ALGORITHM", "type": "string", "jsonPath": ".spec.algorithm"},
            {"name": "ROUTES", "type": "integer", "jsonPath": ".status.routes"},
            {"name": "TARGETS", "type": "integer", "jsonPath": ".status.targets"},
            _cond("READY"),
            _cond("REFS", "ResolvedRefs") | {"priority": 1},
            _AGE,
        ),
    ),
    Kind(
        "CostBudget",
        "costbudgets",
        "costbudget",
        "budget",
        CostBudgetResource,
        (
            {"name": "LIMIT", "type": "number", "jsonPath": ".spec.limitUSD"},
            {"name": "COST", "type": "string", "jsonPath": ".status.costThisPeriod"},
            {"name": "USED", "type": "string", "jsonPath": ".status.percentUsed"},
            {"name": "PROJECTED", "type": "string", "jsonPath": ".status.projectedPeriodCost"},
            {"name": "STATE", "type": "string", "jsonPath": ".status.state"},
            {"name": "ACTION", "type": "string", "jsonPath": ".status.lastAction.action"},
            {"name": "ENDS", "type": "date", "jsonPath": ".status.periodEnds", "priority": 1},
            {"name": "PERIOD", "type": "string", "jsonPath": ".spec.period", "priority": 1},
            _AGE,
        ),
    ),
)


# ------------------------------------------------------------------------------ schema walker
def _deep_merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _deep_merge(out[key], value)
        else:
            out[key] = value
    return out


def _strip_none(tp: Any) -> Any:
    if get_origin(tp) in (Union, types.UnionType):
        args = [a for a in get_args(tp) if a is not type(None)]
        if len(args) == 1:
            return args[0]
        return Union[tuple(args)]  # noqa: UP007 - rebuilding a runtime union
    return tp


def _type_schema(tp: Any, where: str) -> dict[str, Any]:
    tp = _strip_none(tp)
    origin = get_origin(tp)
    if origin in (Union, types.UnionType):
        if set(get_args(tp)) == {int, str}:
            return {"x-kubernetes-int-or-string": True}
        raise SchemaError(f"{where}: unions other than int | str are not structural")
    if origin is Literal:
        values = list(get_args(tp))
        return {"type": "string", "enum": values}
    if origin is list:
        (item,) = get_args(tp)
        return {"type": "array", "items": _type_schema(item, f"{where}[]")}
    if origin is dict:
        key, value = get_args(tp)
        if key is not str:
            raise SchemaError(f"{where}: map keys must be strings")
        if value is Any:  # a Kubernetes type passed through as is; the API server validates it on apply
            return {"type": "object", "x-kubernetes-preserve-unknown-fields": True}
        return {"type": "object", "additionalProperties": _type_schema(value, f"{where}{{}}")}
    if isinstance(tp, type):
        if issubclass(tp, BaseModel):
            return model_schema(tp)
        if issubclass(tp, Enum):
            return {"type": "string", "enum": [m.value for m in tp]}
        if tp is bool:
            return {"type": "boolean"}
        if tp is int:
            return {"type": "integer"}
        if tp is float:
            return {"type": "number"}
        if tp is str:
            return {"type": "string"}
    raise SchemaError(f"{where}: unsupported type {tp!r}")


def _constraints(schema: dict[str, Any], info: FieldInfo) -> dict[str, Any]:
    out = dict(schema)
    is_array = out.get("type") == "array"
    is_map = out.get("type") == "object" and "additionalProperties" in out
    for meta in info.metadata:
        if isinstance(meta, at.Ge):
            out["minimum"] = meta.ge
        elif isinstance(meta, at.Gt):
            out["minimum"] = meta.gt
            out["exclusiveMinimum"] = True
        elif isinstance(meta, at.Le):
            out["maximum"] = meta.le
        elif isinstance(meta, at.Lt):
            out["maximum"] = meta.lt
            out["exclusiveMaximum"] = True
        elif isinstance(meta, at.MinLen):
            out["minItems" if is_array else "minProperties" if is_map else "minLength"] = meta.min_length
        elif isinstance(meta, at.MaxLen):
            out["maxItems" if is_array else "maxProperties" if is_map else "maxLength"] = meta.max_length
    return out


def _default(info: FieldInfo) -> Any:
    if info.default_factory is not None:
        value = info.default_factory()  # type: ignore[call-arg]
    elif info.default is PydanticUndefined:
        return PydanticUndefined
    else:
        value = info.default
    if value is None:
        return PydanticUndefined
    if isinstance(value, BaseModel):
        # An empty object lets the API server fill in each nested field's own default, but a
        # default is checked against CEL rules as written, so objects with rules get it in full.
        if value == type(value)() and not _has_rules(type(value)):
            return {}
        return value.model_dump(by_alias=True, mode="json", exclude_none=True)
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, (list, dict)) and not value:
        return PydanticUndefined  # nothing to fill in; the operator reads absent as empty
    return value


def _has_rules(cls: type[BaseModel]) -> bool:
    extra = cls.model_config.get("json_schema_extra")
    if isinstance(extra, dict) and "x-kubernetes-validations" in extra:
        return True
    for info in cls.model_fields.values():
        tp = _strip_none(info.annotation)
        if isinstance(tp, type) and issubclass(tp, BaseModel) and _has_rules(tp):
            return True
    return False


def _description(text: str | None) -> str:
    return " ".join((text or "").split())


def model_schema(cls: type[BaseModel]) -> dict[str, Any]:
    props: dict[str, Any] = {}
    required: list[str] = []
    for name, info in cls.model_fields.items():
        where = f"{cls.__name__}.{name}"
        wire = info.alias or name
        if not info.description:
            raise SchemaError(f"{where}: every field needs a description")
        schema = _constraints(_type_schema(info.annotation, where), info)
        schema["description"] = _description(info.description)
        default = _default(info)
        if info.is_required():
            required.append(wire)
        elif default is not PydanticUndefined:
            schema["default"] = default
        field_extra = info.json_schema_extra
        if isinstance(field_extra, dict):
            schema = _deep_merge(schema, field_extra)
        props[wire] = schema
    out: dict[str, Any] = {"type": "object", "description": _description(cls.__doc__), "properties": props}
    if required:
        out["required"] = required
    extra = cls.model_config.get("json_schema_extra")
    if isinstance(extra, dict):
        out = _deep_merge(out, extra)
    return out


# ------------------------------------------------------------------------------ CRDs
def crd_manifest(kind: Kind) -> dict[str, Any]:
    body = model_schema(kind.model)
    body["properties"] = {
        "apiVersion": {
            "type": "string",
            "description": "APIVersion defines the versioned schema of this representation of an object.",
        },
        "kind": {"type": "string", "description": "Kind is a string value representing the REST resource."},
        "metadata": {"type": "object"},
        **body["properties"],
    }
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {
            "name": kind.crd_name,
            "labels": {
                "app.kubernetes.io/name": "ai-multimodel",
                "app.kubernetes.io/part-of": "ai-multimodel",
            },
        },
        "spec": {
            "group": GROUP,
            "names": {
                "kind": kind.kind,
                "listKind": f"{kind.kind}List",
                "plural": kind.plural,
                "singular": kind.singular,
                "shortNames": [kind.short],
                "categories": ["aimm"],
            },
            "scope": "Namespaced",
            "versions": [
                {
                    "name": VERSION,
                    "served": True,
                    "storage": True,
                    "subresources": {"status": {}},
                    "additionalPrinterColumns": list(kind.columns),
                    "schema": {"openAPIV3Schema": body},
                }
            ],
        },
    }


HEADER = "# Generated by `aimm crds` from the pydantic models in operator/crd/. Do not edit.\n"


def render_crds() -> dict[str, str]:
    """File name -> YAML text, for every kind."""
    out = {}
    for kind in KINDS:
        text = yaml.safe_dump(crd_manifest(kind), sort_keys=False, width=120, allow_unicode=True)
        out[f"{GROUP}_{kind.plural}.yaml"] = HEADER + text
    return out


def write_crds(out_dir: Path) -> list[Path]:
    """Write one YAML file per CRD into out_dir; returns the paths written."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for name, text in render_crds().items():
        path = out_dir / name
        path.write_text(text)
        written.append(path)
    return written


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="python -m aimm_operator.crd.generate")
    parser.add_argument("--out", type=Path, action="append", help="output directory (repeatable)")
    args = parser.parse_args(argv)
    for out in args.out or [Path("crds")]:
        for path in write_crds(out):
            print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
