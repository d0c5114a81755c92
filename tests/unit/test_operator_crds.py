"""The CRDs: generated from the models, committed without drift, documented, structural, with CEL."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import Field

from aimm_gateway.presets import PROVIDER_NAMES
from aimm_operator.crd.common import ApiModel
from aimm_operator.crd.generate import KINDS, SchemaError, model_schema, render_crds, write_crds

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("where", ["crds", "charts/ai-multimodel/crds"])
def test_committed_crds_do_not_drift(where: str) -> None:
    rendered = render_crds()
    on_disk = {p.name: p.read_text() for p in (REPO / where).glob("*.yaml")}
    assert on_disk == rendered, f"{where} is stale: run `aimm crds` (and copy to the chart)"


def test_write_crds(tmp_path: Path) -> None:
    paths = write_crds(tmp_path)
    assert sorted(p.name for p in paths) == sorted(render_crds())
    assert all(p.read_text() for p in paths)


def _walk(schema: dict[str, Any], path: str = "") -> list[tuple[str, dict[str, Any]]]:
    out = []
    for name, prop in (schema.get("properties") or {}).items():
        out.append((f"{path}.{name}", prop))
        out += _walk(prop, f"{path}.{name}")
        if prop.get("type") == "array":
            out += _walk(prop["items"], f"{path}.{name}[]")
    return out


@pytest.mark.parametrize("kind", KINDS, ids=lambda k: k.kind)
def test_every_field_documented_and_structural(kind: Any) -> None:
    crd = yaml.safe_load(render_crds()[f"aimm.io_{kind.plural}.yaml"])
    version = crd["spec"]["versions"][0]
    assert version["subresources"] == {"status": {}}
    schema = version["schema"]["openAPIV3Schema"]
    for path, prop in _walk(schema):
        if path == ".metadata":
            continue
        assert prop.get("description"), f"{kind.kind}{path} has no description"
        assert "type" in prop or prop.get("x-kubernetes-int-or-string"), f"{kind.kind}{path} has no type"
        assert not {"anyOf", "oneOf", "allOf", "$ref"} & set(prop), f"{kind.kind}{path} is not structural"
        if prop.get("type") == "object" and "properties" in prop:
            assert "additionalProperties" not in prop
    conds = schema["properties"]["status"]["properties"]["conditions"]
    assert conds["x-kubernetes-list-type"] == "map" and conds["x-kubernetes-list-map-keys"] == ["type"]
    # One writer per condition type: each is owned whole, one managedFields entry (not seven).
    assert conds["items"]["x-kubernetes-map-type"] == "atomic"
    assert set(conds["items"]["properties"]) >= {
        "type",
        "status",
        "reason",
        "message",
        "lastTransitionTime",
        "observedGeneration",
    }
    assert "observedGeneration" in schema["properties"]["status"]["properties"]


def test_names_and_columns() -> None:
    crds = {k.kind: yaml.safe_load(render_crds()[f"aimm.io_{k.plural}.yaml"]) for k in KINDS}
    names = {k: (c["spec"]["names"]["plural"], c["spec"]["names"]["shortNames"]) for k, c in crds.items()}
    assert names == {
        "AIGateway": ("aigateways", ["aigw"]),
        "AIModel": ("aimodels", ["aim"]),
        "RoutingPolicy": ("routingpolicies", ["rp"]),
        "CostBudget": ("costbudgets", ["budget"]),
    }

    def cols(kind: str) -> list[str]:
        return [
            c["name"] for c in crds[kind]["spec"]["versions"][0]["additionalPrinterColumns"] if not c.get("priority")
        ]

    assert cols("AIModel") == ["PROVIDER", "MODEL", "ENABLED", "READY", "CIRCUIT", "P95", "ERRORS", "COST", "AGE"]
    assert cols("RoutingPolicy") == ["ALGORITHM", "ROUTES", "TARGETS", "READY", "AGE"]
    assert cols("CostBudget") == ["LIMIT", "COST", "USED", "PROJECTED", "STATE", "ACTION", "AGE"]


def test_provider_enum_and_defaults() -> None:
    crd = yaml.safe_load(render_crds()["aimm.io_aimodels.yaml"])
    spec = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
    assert spec["properties"]["provider"]["enum"] == list(PROVIDER_NAMES)
    gw = yaml.safe_load(render_crds()["aimm.io_aigateways.yaml"])
    gspec = gw["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"]
    assert gspec["replicas"]["default"] == {"min": 5, "max": 50}  # full: a default is checked by CEL as written
    assert gspec["autoscaling"]["default"] == {}
    assert gspec["autoscaling"]["properties"]["targetCPUUtilizationPercentage"]["default"] == 70


def test_cel_rules_present() -> None:
    text = "".join(render_crds().values())
    for message in (
        "replicas.min must be less than or equal to replicas.max",
        "target weights must be >= 0",
        "target weights must not all be zero",
        "route names must be unique",
        "alert thresholds must be in ascending order",
        "limitUSD must be greater than 0",
    ):
        assert message in text


def test_field_without_description_is_an_error() -> None:
    class Bad(ApiModel):
        """Bad."""

        x: int = Field(1)

    with pytest.raises(SchemaError, match="description"):
        model_schema(Bad)
