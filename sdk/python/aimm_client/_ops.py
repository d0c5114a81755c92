"""Every API operation as data: what to send and how to read the answer. Shared by both clients.

`OPERATIONS` maps each public client method to the (method, path) it calls; the contract test
checks it against the gateway's /openapi.json in both directions. Each function below builds
one operation from a public method's arguments (its signature and docstring *are* the method's):
`_surface.Surface` turns it into `Client.<name>` and `AsyncClient.<name>`, so the sync and async
clients differ only in how they send (see `_surface`).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any, Generic, ParamSpec, TypeVar
from urllib.parse import quote

import httpx

from aimm_client.types import (
    JSON,
    BatchResult,
    Feedback,
    LiveMetrics,
    ModelList,
    ModelStatus,
    MultipleResult,
    QueryResult,
    Stats,
)

T = TypeVar("T")
P = ParamSpec("P")

OPERATIONS: dict[str, tuple[str, str]] = {
    "query": ("POST", "/api/v1/query"),
    "query_multiple": ("POST", "/api/v1/query/multiple"),
    "stream": ("POST", "/api/v1/query/stream"),
    "batch": ("POST", "/api/v1/batch"),
    "feedback": ("POST", "/api/v1/feedback"),
    "models": ("GET", "/api/v1/models"),
    "metrics": ("GET", "/api/v1/metrics"),
    "stats": ("GET", "/api/v1/stats"),
    "usage": ("GET", "/api/v1/analytics/usage"),
    "top_consumers": ("GET", "/api/v1/analytics/top"),
    "report": ("GET", "/api/v1/analytics/report"),
    "budgets": ("GET", "/api/v1/budgets"),
    "subscribe": ("GET", "/api/v1/ws"),
    "add_model": ("POST", "/admin/models"),
    "models_status": ("GET", "/admin/models/status"),
    "update_model": ("PATCH", "/admin/models/{name}"),
    "enable_model": ("PATCH", "/admin/models/{name}"),
    "disable_model": ("PATCH", "/admin/models/{name}"),
    "set_model_weight": ("PATCH", "/admin/models/{name}"),
    "create_key": ("POST", "/admin/keys"),
    "list_keys": ("GET", "/admin/keys"),
    "revoke_key": ("DELETE", "/admin/keys/{key_id}"),
    "rotate_key": ("POST", "/admin/keys/{key_id}/rotate"),
    "audit": ("GET", "/admin/audit"),
    "health": ("GET", "/health"),
    "ready": ("GET", "/ready"),
}

_IDEMPOTENT = frozenset({"GET", "HEAD", "PUT", "DELETE", "OPTIONS"})


@dataclass(frozen=True, slots=True)
class Call:
    """One HTTP request of the API, before headers and request id are added."""

    method: str
    path: str
    json: Any = None
    params: Mapping[str, str] | None = None
    admin: bool = False  # sent with the admin token when one is configured
    idempotent: bool | None = None  # None: decided by the HTTP method
    timeout: float | None = None  # None: the client's

    @property
    def safe_to_repeat(self) -> bool:
        return self.idempotent if self.idempotent is not None else self.method in _IDEMPOTENT


@dataclass(frozen=True, slots=True)
class Op(Generic[T]):
    """A call and how to read its successful answer."""

    call: Call
    parse: Callable[[httpx.Response], T]


def json_body(response: httpx.Response) -> JSON:
    data: JSON = response.json()
    return data


def _read_as(from_json: Callable[[JSON], T]) -> Callable[[httpx.Response], T]:
    return lambda response: from_json(json_body(response))


def _statuses(response: httpx.Response) -> list[ModelStatus]:
    return [ModelStatus.from_json(m) for m in json_body(response)["models"]]


def _content(response: httpx.Response) -> bytes:
    return response.content


def _nothing(response: httpx.Response) -> None:
    return None


def _call(op_name: str, path_args: Mapping[str, str] | None = None, **fields: Any) -> Call:
    method, path = OPERATIONS[op_name]
    path = path.format(**{k: quote(v, safe="") for k, v in (path_args or {}).items()})
    return Call(method, path, **fields)


def _get(op_name: str, params: Mapping[str, str | None] | None = None, *, admin: bool = False) -> Op[JSON]:
    clean = {k: v for k, v in (params or {}).items() if v is not None}
    return Op(_call(op_name, params=clean or None, admin=admin), json_body)


def _prompt_body(prompt: str, **options: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"prompt": prompt}
    body.update({k: v for k, v in options.items() if v is not None})
    return body


# -- native API ------------------------------------------------------------------------------


def query(
    prompt: str,
    *,
    model: str | None = None,
    system: str | None = None,
    max_tokens: int | None = None,
    temperature: float | None = None,
    fallback_model: str | None = None,
    timeout: float | None = None,
) -> Op[QueryResult]:
    """One prompt to a model or route (the gateway's default when `model` is None)."""
    body = _prompt_body(
        prompt,
        model=model,
        system=system,
        max_tokens=max_tokens,
        temperature=temperature,
        fallback_model=fallback_model,
    )
    return Op(_call("query", json=body, timeout=timeout), _read_as(QueryResult.from_json))


def _streamed(build: Callable[P, Op[Any]]) -> Callable[P, Call]:
    """The streaming twin of `build`: the same arguments and body, sent to the stream route."""
    method, path = OPERATIONS["stream"]

    def stream(*args: P.args, **kwargs: P.kwargs) -> Call:
        return replace(build(*args, **kwargs).call, method=method, path=path)

    functools.update_wrapper(stream, build, assigned=())  # inspect.signature: the same as build's
    return stream


stream = _streamed(query)
stream.__doc__ = """The answer as it is generated: iterate for ContentChunk pieces, then one FinalChunk.

    The request is sent on first use, so errors before the first byte (with retries) raise
    there; an error event mid-stream raises its APIError with `during_stream=True`."""


def query_multiple(
    prompt: str,
    models: Iterable[str],
    *,
    compare: bool = True,
    system: str | None = None,
    max_tokens: int | None = None,
    temperature: float | None = None,
) -> Op[MultipleResult]:
    """One prompt to several models at once; `compare` adds the agreement/fastest/cheapest summary."""
    options = {"system": system, "max_tokens": max_tokens, "temperature": temperature}
    body = _prompt_body(prompt, models=list(models), compare_results=compare, **options)
    return Op(_call("query_multiple", json=body), _read_as(MultipleResult.from_json))


def batch(items: Iterable[str | Mapping[str, Any]], *, model: str | None = None) -> Op[BatchResult]:
    """Many prompts in one call; results keep the order of `items` (failures included).

    Each item is a prompt or a {prompt, model?, system?, max_tokens?, ...} mapping."""
    requests = [
        _prompt_body(i, model=model) if isinstance(i, str) else {**_prompt_body("", model=model), **i} for i in items
    ]
    return Op(_call("batch", json={"requests": requests}), _read_as(BatchResult.from_json))


def feedback(model: str, score: float, *, request_id: str | None = None) -> Op[Feedback]:
    """A quality score for a model's answer (optionally for one request)."""
    body: dict[str, Any] = {"model": model, "score": score}
    if request_id is not None:
        body["request_id"] = request_id
    return Op(_call("feedback", json=body), _read_as(Feedback.from_json))


def models() -> Op[ModelList]:
    """The models and routes a caller may use."""
    return Op(_call("models"), _read_as(ModelList.from_json))


def metrics() -> Op[LiveMetrics]:
    """The gateway's live figures."""
    return Op(_call("metrics"), _read_as(LiveMetrics.from_json))


def stats() -> Op[Stats]:
    """The gateway's statistics."""
    return Op(_call("stats"), _read_as(Stats.from_json))


def usage(*, start: str | None = None, end: str | None = None, group_by: str | Iterable[str] | None = None) -> Op[JSON]:
    """Usage analytics between `start` and `end` (ISO 8601), grouped by model, day, ..."""
    grouping = group_by if group_by is None or isinstance(group_by, str) else ",".join(group_by)
    return _get("usage", {"from": start, "to": end, "group_by": grouping})


def top_consumers(*, by: str = "key", limit: int = 10, start: str | None = None, end: str | None = None) -> Op[JSON]:
    """The biggest spenders between `start` and `end`, by key, team, model, ..."""
    return _get("top_consumers", {"by": by, "limit": str(limit), "from": start, "to": end})


def report(*, period: str | None = None) -> Op[bytes]:
    """The PDF report of a period (`YYYY-MM`, default this month)."""
    return Op(_get("report", {"period": period}).call, _content)


def budgets() -> Op[JSON]:
    """The cost budgets and their spend."""
    return _get("budgets")


def health() -> Op[JSON]:
    """Liveness: the gateway answers."""
    return _get("health")


def ready() -> Op[JSON]:
    """Readiness: whether the gateway has a usable model."""
    return _get("ready")


# -- admin -----------------------------------------------------------------------------------


def add_model(config: Mapping[str, Any]) -> Op[ModelStatus]:
    """Add a model at runtime (the same fields as a `models:` entry of the gateway config)."""
    return Op(_call("add_model", json=dict(config), admin=True), _read_as(ModelStatus.from_json))


def _patch_model(op_name: str, name: str, changes: Mapping[str, Any]) -> Op[ModelStatus]:
    # Setting fields to given values: repeating it changes nothing more, so it may be retried.
    call = _call(op_name, {"name": name}, json=dict(changes), admin=True, idempotent=True)
    return Op(call, _read_as(ModelStatus.from_json))


def update_model(name: str, **changes: Any) -> Op[ModelStatus]:
    """Change a model at runtime (the fields the gateway's PATCH /admin/models/{name} takes)."""
    return _patch_model("update_model", name, changes)


def enable_model(name: str) -> Op[ModelStatus]:
    """Put a disabled model back in service."""
    return _patch_model("enable_model", name, {"enabled": True})


def disable_model(name: str) -> Op[ModelStatus]:
    """Take a model out of service until it is enabled again."""
    return _patch_model("disable_model", name, {"enabled": False})


def set_model_weight(name: str, weight: float) -> Op[ModelStatus]:
    """Weigh a model for weighted routes (0 to 1,000,000; 0: never the weighted pick)."""
    return _patch_model("set_model_weight", name, {"weight": weight})


def models_status() -> Op[list[ModelStatus]]:
    """Every model with its status."""
    return Op(_call("models_status", admin=True), _statuses)


def create_key(name: str, *, role: str = "user", **options: Any) -> Op[JSON]:
    """A new API key; its secret is in the answer once and never again."""
    return Op(_call("create_key", json={"name": name, "role": role, **options}, admin=True), json_body)


def list_keys() -> Op[JSON]:
    """The API keys (without their secrets)."""
    return _get("list_keys", admin=True)


def revoke_key(key_id: str) -> Op[None]:
    """Revoke an API key at once."""
    return Op(_call("revoke_key", {"key_id": key_id}, admin=True), _nothing)


def rotate_key(key_id: str, **options: Any) -> Op[JSON]:
    """A new secret for an API key (in the answer once); `overlap_s`: how long the old one still works."""
    return Op(_call("rotate_key", {"key_id": key_id}, json=dict(options), admin=True), json_body)


def audit(
    *,
    since: str | float | None = None,
    until: str | float | None = None,
    actor: str | None = None,
    action: str | None = None,
    outcome: str | None = None,
    limit: int | None = None,
    cursor: str | None = None,
) -> Op[JSON]:
    """One page of the audit trail, newest first: `data` (each record with `verified`), `verified`,
    `has_more` and `next_cursor` (pass it as `cursor` for the next page). Times: ISO 8601 or Unix seconds."""
    params = {"since": since, "until": until, "actor": actor, "action": action, "outcome": outcome}
    text = {k: str(v) for k, v in {**params, "limit": limit, "cursor": cursor}.items() if v is not None}
    return _get("audit", text, admin=True)
