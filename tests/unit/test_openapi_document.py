"""The OpenAPI document lists exactly the routed operations, unknown routes flagged, not hidden."""

from __future__ import annotations

import orjson

from aimm_gateway.api.openapi import OPERATIONS, build_document


def test_only_routed_operations_are_listed_and_unknown_ones_are_flagged() -> None:
    doc = orjson.loads(build_document((("POST", "/api/v1/query"), ("GET", "/api/v1/brand-new"))))
    assert set(doc["paths"]) == {"/api/v1/query", "/api/v1/brand-new"}
    assert doc["paths"]["/api/v1/query"]["post"]["operationId"] == "query"
    assert doc["paths"]["/api/v1/brand-new"]["get"]["x-aimm-undocumented"] is True


def test_every_reference_resolves() -> None:
    doc = orjson.loads(build_document(tuple(OPERATIONS)))
    schemas = doc["components"]["schemas"]
    refs = [r for r in orjson.dumps(doc).decode().split('"$ref":"')[1:]]
    names = {r.split('"', 1)[0].removeprefix("#/components/schemas/") for r in refs}
    assert names and names <= set(schemas)
    ids = [op["operationId"] for ops in doc["paths"].values() for op in ops.values()]
    assert len(ids) == len(set(ids))  # operation ids are unique
