"""GET /openapi.json: the gateway's HTTP API as an OpenAPI 3.1 document.

Request bodies are the pydantic models the handlers validate with (QueryBody, MultipleBody,
FeedbackBody, ModelPatch, ModelConfig); the response bodies, which handlers build as dicts, are
described by the models below. The document lists only the operations the running app actually
routes, so it stays true while endpoints come and go; a routed operation with no entry in
`OPERATIONS` still appears (bare, `x-aimm-undocumented: true`) so nothing is silently hidden.
SDK contract tests read this document from a live gateway.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from importlib.metadata import PackageNotFoundError, version
from typing import Any, Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field
from pydantic.json_schema import JsonSchemaMode, models_json_schema
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route, WebSocketRoute

from aimm_gateway.api.admin_routes import ModelPatch
from aimm_gateway.api.native_routes import FeedbackBody, MultipleBody, QueryBody
from aimm_gateway.config import ModelConfig

_REF = "#/components/schemas/{model}"


def _version() -> str:
    try:
        return version("ai-multimodel")
    except PackageNotFoundError:  # running from a source tree without an install
        return "0+unknown"


class Open(BaseModel):
    """Response documents may grow fields; clients must ignore ones they don't know."""

    model_config = ConfigDict(extra="allow")


class ErrorDetail(Open):
    message: str
    type: str
    param: str | None = None
    code: str | None = None


class ErrorBody(Open):
    error: ErrorDetail


class Usage(Open):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int
    total_cost: float = Field(..., description="USD.")


class QueryResult(Open):
    text: str
    model: str
    provider: str
    usage: Usage
    latency_ms: float
    request_id: str
    finish_reason: str | None = None


class QueryFailure(Open):
    """One model's (or one batch item's) failure inside a 200 answer."""

    error: ErrorDetail
    status: int
    model: str | None = None


class Comparison(Open):
    succeeded: int
    failed: int
    agreement_score: float | None = None
    fastest_model: str | None = None
    cheapest_model: str | None = None
    latency_ms: dict[str, float] = {}
    cost_usd: dict[str, float] = {}
    total_tokens: dict[str, int] = {}


class MultipleResult(Open):
    request_id: str
    results: list[QueryResult | QueryFailure]
    comparison: Comparison | None = None


class BatchItem(Open):
    index: int


class BatchBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    requests: list[QueryBody] = Field(..., min_length=1, max_length=256)


class BatchResult(Open):
    request_id: str
    results: list[dict[str, Any]] = Field(..., description="QueryResult or QueryFailure, each with its `index`.")
    succeeded: int
    failed: int


class StreamEvent(Open):
    """One `data:` line of /api/v1/query/stream: content pieces, then one usage or error event."""

    type: Literal["content", "usage", "error"]
    text: str | None = None
    model: str | None = None
    provider: str | None = None
    finish_reason: str | None = None
    usage: Usage | None = None
    latency_ms: float | None = None
    request_id: str | None = None
    error: ErrorDetail | None = None


class FeedbackAccepted(Open):
    accepted: bool
    model: str
    score: float


class Price(Open):
    input_per_1k: str
    output_per_1k: str


class ModelInfo(Open):
    name: str
    provider: str
    model: str
    enabled: bool
    weight: float
    health: Literal["healthy", "degraded", "unavailable"]
    circuit_state: str
    reason: str | None = None
    price: Price
    max_tokens: int | None = None
    context_window: int | None = None
    capabilities: list[str]


class RouteInfo(Open):
    name: str
    algorithm: str
    targets: list[str]
    weights: list[float]
    fallbacks: list[str]


class ModelsList(Open):
    models: list[ModelInfo]
    routes: list[RouteInfo]


class LiveMetrics(Open):
    window_seconds: float
    requests_per_second: float
    latency_ms: dict[str, float | None]
    error_rate: float
    cost_per_hour_usd: str
    traffic_share: dict[str, float]
    models: dict[str, dict[str, Any]]


class ModelStats(Open):
    requests_total: int
    errors_total: int
    requests_per_minute: float
    error_rate: float
    p95_latency_ms: float | None = None
    cost_usd_total: str
    circuit_state: str
    last_error: str | None = None
    available: bool


class Stats(Open):
    config_hash: str
    models: dict[str, ModelStats]
    budgets: dict[str, dict[str, str]]


class ModelStatus(Open):
    name: str
    provider: str
    model: str
    source: Literal["config", "runtime"]
    weight: float
    enabled: bool
    available: bool
    circuit_state: str
    health: str
    reason: str | None = None
    in_flight: int
    retry_in_s: float | None = None
    requests_total: int
    errors_total: int
    error_rate: float
    p95_latency_ms: float | None = None
    last_error: str | None = None


class ModelStatuses(Open):
    models: list[ModelStatus]


class AuditRecordDoc(Open):
    seq: int
    ts: float
    who: str | None = None
    role: str | None = None
    action: str
    target: str | None = None
    outcome: str
    request_id: str | None = None
    detail: dict[str, Any] | None = None
    prev: str
    hash: str
    chain: str | None = Field(None, description="The writing process's chain (store source only).")
    verified: bool = Field(description="Content matches its hash and `prev` its predecessor's hash.")
    problem: str | None = None


class AuditPageDoc(Open):
    object: Literal["list"]
    data: list[AuditRecordDoc]
    has_more: bool
    next_cursor: str | None = None
    source: Literal["store", "file"]
    verified: bool = Field(description="Every record on this page verified.")


class Health(Open):
    status: str


class Ready(Open):
    status: str
    models: int
    config_hash: str | None = None
    reason: str | None = None


@dataclass(frozen=True)
class Operation:
    id: str
    summary: str
    tag: str
    request: type[BaseModel] | None = None
    response: type[BaseModel] | None = None
    status: int = 200
    security: Literal["key", "admin", "none"] = "key"
    stream: bool = False
    params: tuple[tuple[str, str, str], ...] = ()  # (name, in, description)
    client: str | None = None  # another client covers it (openai, anthropic, prometheus)
    binary: str | None = None  # media type of a non-JSON answer (a PDF report)
    extra: dict[str, Any] = field(default_factory=dict)


_NAME = (("name", "path", "Model name."),)
_KEY_ID = (("key_id", "path", "Key id."),)
# Every analytics query reads its time range the same way (analytics_routes._range).
_RANGE = (
    ("from", "query", "Start (RFC 3339 or a date); default: `to` minus one day."),
    ("to", "query", "End (RFC 3339 or a date); default: now."),
)

# Keyed by (method, path). Entries for routes the running app lacks are left out of the document.
OPERATIONS: dict[tuple[str, str], Operation] = {
    ("POST", "/api/v1/query"): Operation("query", "One prompt to a model or route", "native", QueryBody, QueryResult),
    ("POST", "/api/v1/query/multiple"): Operation(
        "queryMultiple", "One prompt to several models, compared", "native", MultipleBody, MultipleResult
    ),
    ("POST", "/api/v1/query/stream"): Operation(
        "queryStream", "One prompt, answered as server-sent events", "native", QueryBody, StreamEvent, stream=True
    ),
    ("POST", "/api/v1/batch"): Operation("batch", "Many prompts in one call", "native", BatchBody, BatchResult),
    ("POST", "/api/v1/feedback"): Operation(
        "feedback", "Score an answer (the adaptive router learns)", "native", FeedbackBody, FeedbackAccepted, 202
    ),
    ("GET", "/api/v1/models"): Operation("listModels", "Models, health and routes", "native", None, ModelsList),
    ("GET", "/api/v1/metrics"): Operation(
        "liveMetrics", "Live totals over the stats window", "native", None, LiveMetrics
    ),
    ("GET", "/api/v1/stats"): Operation(
        "stats", "Per-model aggregates (what the operator polls)", "native", None, Stats
    ),
    ("GET", "/api/v1/analytics/usage"): Operation(
        "analyticsUsage",
        "Usage grouped over a time range (JSON, or CSV with format=csv)",
        "analytics",
        params=(
            *_RANGE,
            ("group_by", "query", "model | provider | key | route | team | hour | day"),
            ("format", "query", "json (default) | csv"),
        ),
    ),
    ("GET", "/api/v1/analytics/top"): Operation(
        "analyticsTop",
        "Top consumers over a time range",
        "analytics",
        params=(
            *_RANGE,
            ("by", "query", "key | team | model | route ..."),
            ("limit", "query", "1 .. 1000, default 10."),
        ),
    ),
    ("GET", "/api/v1/analytics/report"): Operation(
        "analyticsReport",
        "PDF report of one period",
        "analytics",
        params=(("period", "query", "YYYY-MM (default: this month) or another period label."),),
        binary="application/pdf",
    ),
    ("GET", "/api/v1/budgets"): Operation("listBudgets", "Budgets with spend this period", "analytics"),
    ("GET", "/api/v1/ws"): Operation(
        "subscribe",
        "Live feed over WebSocket (channels: metrics, models, alerts, requests)",
        "live",
        status=101,
        params=(("channels", "query", "Comma-separated channel names."),),
    ),
    ("POST", "/admin/models"): Operation(
        "addModel", "Add a model at runtime", "admin", ModelConfig, ModelStatus, 201, "admin"
    ),
    ("GET", "/admin/models/status"): Operation(
        "modelsStatus", "Every model's status", "admin", None, ModelStatuses, security="admin"
    ),
    ("PATCH", "/admin/models/{name}"): Operation(
        "updateModel",
        "Change a model (enable/disable)",
        "admin",
        ModelPatch,
        ModelStatus,
        security="admin",
        params=_NAME,
    ),
    ("POST", "/admin/keys"): Operation("createKey", "Create an API key", "admin", security="admin"),
    ("GET", "/admin/keys"): Operation("listKeys", "List API keys", "admin", security="admin"),
    ("DELETE", "/admin/keys/{key_id}"): Operation(
        "revokeKey", "Revoke an API key", "admin", security="admin", params=_KEY_ID
    ),
    ("POST", "/admin/keys/{key_id}/rotate"): Operation(
        "rotateKey", "Rotate an API key's secret", "admin", security="admin", params=_KEY_ID
    ),
    ("GET", "/admin/audit"): Operation(
        "audit",
        "The audit trail, newest first, each record's hash chain checked",
        "admin",
        None,
        AuditPageDoc,
        security="admin",
        params=(
            ("since", "query", "From this time on (RFC 3339, a date, or Unix seconds)."),
            ("until", "query", "Before this time (RFC 3339, a date, or Unix seconds)."),
            ("actor", "query", "Only records by this identity (`who`)."),
            ("action", "query", "Only this action (key.create, auth.failure, ...)."),
            ("outcome", "query", "Only this outcome (ok, denied, refused, ...)."),
            ("limit", "query", "Records per page, 1 .. 200, default 50."),
            ("cursor", "query", "`next_cursor` of the previous page."),
        ),
    ),
    # Own keys (developer role) and encrypted model keys: no SDK method yet, plain HTTP.
    ("POST", "/api/v1/keys"): Operation("createOwnKey", "Create one of your own API keys", "keys", client="any"),
    ("GET", "/api/v1/keys"): Operation("listOwnKeys", "List your own API keys", "keys", client="any"),
    ("DELETE", "/api/v1/keys/{key_id}"): Operation(
        "revokeOwnKey", "Revoke one of your API keys", "keys", params=_KEY_ID, client="any"
    ),
    ("POST", "/api/v1/keys/{key_id}/rotate"): Operation(
        "rotateOwnKey", "Rotate one of your API keys", "keys", params=_KEY_ID, client="any"
    ),
    ("PUT", "/admin/models/{name}/api-key"): Operation(
        "setModelKey", "Store a model's upstream key (encrypted)", "admin", security="admin", params=_NAME, client="any"
    ),
    ("GET", "/health"): Operation("health", "Liveness", "ops", None, Health, security="none"),
    ("GET", "/ready"): Operation("ready", "Readiness", "ops", None, Ready, security="none"),
    ("GET", "/metrics"): Operation("prometheus", "Prometheus metrics", "ops", security="none", client="prometheus"),
    ("GET", "/openapi.json"): Operation("openapi", "This document", "ops", security="none", client="any"),
    # The web console (console.enabled): a page for browsers, not an API for clients.
    ("GET", "/console"): Operation("console", "The web console's page", "console", security="none", client="browser"),
    ("GET", "/console/{name}"): Operation(
        "consoleAsset", "A console asset (CSS, JS)", "console", security="none", client="browser", params=_NAME
    ),
    ("GET", "/console/session"): Operation(
        "consoleSession", "Who the key belongs to and what the console may show", "console", client="browser"
    ),
    ("POST", "/v1/chat/completions"): Operation(
        "chatCompletions", "OpenAI chat completions", "openai", client="openai"
    ),
    ("POST", "/v1/embeddings"): Operation("embeddings", "OpenAI embeddings", "openai", client="openai"),
    ("GET", "/v1/models"): Operation("openaiModels", "OpenAI model list", "openai", client="openai"),
    ("POST", "/v1/messages"): Operation("messages", "Anthropic messages", "anthropic", client="anthropic"),
    ("POST", "/v1/messages/count_tokens"): Operation(
        "countTokens", "Anthropic token counting", "anthropic", client="anthropic"
    ),
}


def _routed(routes: list[BaseRoute]) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    for route in routes:
        if isinstance(route, WebSocketRoute):
            out.append(("GET", route.path))
        elif isinstance(route, Route):
            out += [(m, route.path) for m in sorted(route.methods or ()) if m != "HEAD"]
    return out


def _schemas() -> tuple[dict[Any, str], dict[str, Any]]:
    """Every referenced model's $ref, and the shared definitions. Request bodies are described
    as the handlers validate them, responses as they are serialized."""
    models: set[type[BaseModel]] = {m for op in OPERATIONS.values() for m in (op.request, op.response) if m}
    requests = {op.request for op in OPERATIONS.values()}
    pairs: list[tuple[type[BaseModel], JsonSchemaMode]] = [
        (m, "validation" if m in requests else "serialization") for m in sorted(models | {ErrorBody}, key=str)
    ]
    refs, defs = models_json_schema(pairs, ref_template=_REF)
    return {m: r["$ref"] for (m, _), r in refs.items()}, defs.get("$defs", {})


def _operation(op: Operation, refs: dict[type[BaseModel], str]) -> dict[str, Any]:
    doc: dict[str, Any] = {"operationId": op.id, "summary": op.summary, "tags": [op.tag]}
    if op.params:
        doc["parameters"] = [
            {"name": n, "in": where, "required": where == "path", "description": d, "schema": {"type": "string"}}
            for n, where, d in op.params
        ]
    if op.request is not None:
        content = {"application/json": {"schema": {"$ref": refs[op.request]}}}
        doc["requestBody"] = {"required": True, "content": content}
    media = "text/event-stream" if op.stream else "application/json"
    ok: dict[str, Any] = {"description": "Switching protocols" if op.status == 101 else "OK"}
    if op.response is not None:
        ok["content"] = {media: {"schema": {"$ref": refs[op.response]}}}
    elif op.binary is not None:
        ok["content"] = {op.binary: {"schema": {"type": "string", "format": "binary"}}}
    error = {
        "description": "OpenAI-shaped error",
        "content": {"application/json": {"schema": {"$ref": refs[ErrorBody]}}},
    }
    doc["responses"] = {str(op.status): ok, "default": error}
    if op.security != "none":
        doc["security"] = [{"adminToken" if op.security == "admin" else "apiKey": []}]
    if op.client is not None:
        doc["x-aimm-client"] = op.client
    return doc | op.extra


@lru_cache(maxsize=8)
def build_document(routed: tuple[tuple[str, str], ...]) -> bytes:
    """The document for an app routing exactly `routed` (cached: routes are fixed per app)."""
    refs, defs = _schemas()
    paths: dict[str, dict[str, Any]] = {}
    for method, path in routed:
        op = OPERATIONS.get((method, path))
        entry = (
            _operation(op, refs)
            if op is not None
            else {
                "summary": f"{method} {path}",
                "x-aimm-undocumented": True,
                "responses": {"default": {"description": "?"}},
            }
        )
        paths.setdefault(path, {})[method.lower()] = entry
    doc = {
        "openapi": "3.1.0",
        "info": {"title": "AI Multi-Model gateway", "version": _version()},
        "paths": paths,
        "components": {
            "schemas": defs,
            "securitySchemes": {
                "apiKey": {"type": "http", "scheme": "bearer", "description": "An API key (or x-api-key)."},
                "adminToken": {"type": "http", "scheme": "bearer", "description": "The admin token."},
            },
        },
    }
    return orjson.dumps(doc)


async def openapi(request: Request) -> Response:
    body = build_document(tuple(_routed(list(request.app.routes))))
    return Response(body, media_type="application/json")


routes = [Route("/openapi.json", openapi, methods=["GET"])]
