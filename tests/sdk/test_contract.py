"""The SDKs against the gateway's own description of itself (/openapi.json, read live).

Both directions: every SDK method maps to a documented operation, and every documented operation
(except those other clients cover: OpenAI/Anthropic-compatible routes, Prometheus) has an SDK
method. Operations landing in parallel work are listed in PENDING: allowed to be absent from the
gateway, and the test fails once one lands so the list only shrinks.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx
import pytest
from pydantic import BaseModel

from aimm_gateway.api import openapi
from tests.sdk.harness import ADMIN_TOKEN, API_KEY, LiveGateway

# SDK methods whose endpoint is being built elsewhere this release (see docs/clients.md).
PENDING: set[tuple[str, str]] = set()
PY_CLIENT_ONLY = {"close", "base_url"}
JS_INTERNAL = {"constructor", "exchange", "headers", "json", "patchModel"}


def _documented(doc: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    return {(m.upper(), path): op for path, ops in doc["paths"].items() for m, op in ops.items()}


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(p.title() for p in rest)


def _public(cls: type) -> set[str]:
    return {n for n in dir(cls) if not n.startswith("_")} - PY_CLIENT_ONLY


def test_python_methods_are_exactly_the_operation_table(sdk: ModuleType) -> None:
    assert _public(sdk.Client) == set(sdk.OPERATIONS)
    assert _public(sdk.AsyncClient) == set(sdk.OPERATIONS)


@pytest.fixture(scope="module")
def js_surface(js_project: Path) -> dict[str, Any]:
    code = (
        "import('@aimm/client').then(m => console.log(JSON.stringify("
        "{ops: m.OPERATIONS, methods: Object.getOwnPropertyNames(m.Client.prototype)})))"
    )
    out = subprocess.run(["node", "-e", code], cwd=js_project, capture_output=True, text=True, check=True).stdout
    surface: dict[str, Any] = json.loads(out)
    return surface


def test_js_methods_match_and_mirror_python(sdk: ModuleType, js_surface: dict[str, Any]) -> None:
    assert set(js_surface["methods"]) - JS_INTERNAL == set(js_surface["ops"])
    assert {_camel(k): list(v) for k, v in sdk.OPERATIONS.items()} == js_surface["ops"]


def test_every_sdk_method_maps_to_a_documented_operation(sdk: ModuleType, gateway: LiveGateway) -> None:
    documented = _documented(gateway.openapi())
    used = set(sdk.OPERATIONS.values())
    missing = {op for op in used if op not in documented} - PENDING
    assert not missing, f"SDK methods call operations the gateway does not document: {missing}"
    landed = PENDING & set(documented)
    assert not landed, f"{landed} landed on the gateway: remove them from PENDING (their tests now run for real)"


def test_every_documented_operation_has_an_sdk_method(sdk: ModuleType, gateway: LiveGateway) -> None:
    documented = _documented(gateway.openapi())
    undocumented = {op for op, spec in documented.items() if spec.get("x-aimm-undocumented")}
    assert not undocumented, f"routes without an entry in gateway/api/openapi.py: {undocumented}"
    ours = {op for op, spec in documented.items() if "x-aimm-client" not in spec}
    uncovered = ours - set(sdk.OPERATIONS.values())
    assert not uncovered, f"documented operations without an SDK method: {uncovered}"


def test_request_schemas_are_the_handlers_models(gateway: LiveGateway) -> None:
    doc = gateway.openapi()
    schemas = doc["components"]["schemas"]
    body = doc["paths"]["/api/v1/query"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert body == {"$ref": "#/components/schemas/QueryBody"}
    assert schemas["QueryBody"]["required"] == ["prompt"]
    assert schemas["QueryBody"]["additionalProperties"] is False  # extra="forbid", as the handler
    assert "provider" in schemas["ModelConfig"]["required"]
    assert doc["info"]["version"] == sdk_version()


def sdk_version() -> str:
    from importlib.metadata import version

    return version("ai-multimodel")


RESPONSES: list[tuple[str, str, Any, type[BaseModel], bool]] = [
    ("POST", "/api/v1/query", {"prompt": "hi", "model": "mock-fast"}, openapi.QueryResult, False),
    ("POST", "/api/v1/query/multiple", {"prompt": "hi", "models": ["mock-fast", "x"]}, openapi.MultipleResult, False),
    ("POST", "/api/v1/batch", {"requests": [{"prompt": "a"}]}, openapi.BatchResult, False),
    ("POST", "/api/v1/feedback", {"model": "mock-fast", "score": 1}, openapi.FeedbackAccepted, False),
    ("GET", "/api/v1/models", None, openapi.ModelsList, False),
    ("GET", "/api/v1/metrics", None, openapi.LiveMetrics, False),
    ("GET", "/api/v1/stats", None, openapi.Stats, False),
    ("GET", "/admin/models/status", None, openapi.ModelStatuses, True),
    ("GET", "/health", None, openapi.Health, False),
    ("GET", "/ready", None, openapi.Ready, False),
]


@pytest.mark.parametrize(("method", "path", "body", "model", "admin"), RESPONSES, ids=[r[1] for r in RESPONSES])
def test_live_answers_match_the_documented_schemas(
    gateway: LiveGateway, method: str, path: str, body: Any, model: type[BaseModel], admin: bool
) -> None:
    token = ADMIN_TOKEN if admin else API_KEY
    resp = httpx.request(
        method, gateway.url + path, json=body, headers={"authorization": f"Bearer {token}"}, timeout=30
    )
    assert resp.status_code < 300, resp.text
    model.model_validate(resp.json())


def test_stream_events_match_the_documented_schema(gateway: LiveGateway) -> None:
    headers = {"authorization": f"Bearer {API_KEY}"}
    body = {"prompt": "hi", "model": "mock-fast"}
    with httpx.stream("POST", f"{gateway.url}/api/v1/query/stream", json=body, headers=headers, timeout=30) as resp:
        events = [json.loads(line[5:]) for line in resp.iter_lines() if line.startswith("data:")]
    kinds = [openapi.StreamEvent.model_validate(e).type for e in events]
    assert kinds[-1] == "usage" and set(kinds[:-1]) == {"content"}
