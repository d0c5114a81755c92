"""Every API operation as data: HTTP method, path, body. Shared by both clients.

`OPERATIONS` maps each public client method to the (method, path) it calls; the contract test
checks it against the gateway's /openapi.json in both directions.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

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
    "create_key": ("POST", "/admin/keys"),
    "list_keys": ("GET", "/admin/keys"),
    "revoke_key": ("DELETE", "/admin/keys/{key_id}"),
    "rotate_key": ("POST", "/admin/keys/{key_id}/rotate"),
    "health": ("GET", "/health"),
    "ready": ("GET", "/ready"),
}

_IDEMPOTENT = frozenset({"GET", "HEAD", "PUT", "DELETE", "OPTIONS"})


@dataclass(frozen=True, slots=True)
class Call:
    method: str
    path: str
    json: Any = None
    params: Mapping[str, str] | None = None
    admin: bool = False  # sent with the admin token when one is configured
    idempotent: bool | None = None  # None: decided by the HTTP method

    @property
    def safe_to_repeat(self) -> bool:
        return self.idempotent if self.idempotent is not None else self.method in _IDEMPOTENT


def _op(op_name: str, **path_args: str) -> tuple[str, str]:
    method, path = OPERATIONS[op_name]
    return method, path.format(**{k: quote(v, safe="") for k, v in path_args.items()})


def _prompt_body(prompt: str, **options: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"prompt": prompt}
    body.update({k: v for k, v in options.items() if v is not None})
    return body


def query(prompt: str, **options: Any) -> Call:
    return Call(*_op("query"), json=_prompt_body(prompt, **options))


def stream(prompt: str, **options: Any) -> Call:
    return Call(*_op("stream"), json=_prompt_body(prompt, **options))


def query_multiple(prompt: str, models: Iterable[str], compare: bool, **options: Any) -> Call:
    body = _prompt_body(prompt, models=list(models), compare_results=compare, **options)
    return Call(*_op("query_multiple"), json=body)


def batch(items: Iterable[str | Mapping[str, Any]], **defaults: Any) -> Call:
    """Each item is a prompt or a {prompt, model?, system?, max_tokens?, ...} mapping."""
    requests = [
        _prompt_body(i, **defaults) if isinstance(i, str) else {**_prompt_body("", **defaults), **i} for i in items
    ]
    return Call(*_op("batch"), json={"requests": requests})


def feedback(model: str, score: float, request_id: str | None) -> Call:
    body: dict[str, Any] = {"model": model, "score": score}
    if request_id is not None:
        body["request_id"] = request_id
    return Call(*_op("feedback"), json=body)


def get(name: str, params: Mapping[str, str | None] | None = None, admin: bool = False) -> Call:
    clean = {k: v for k, v in (params or {}).items() if v is not None}
    return Call(*_op(name), params=clean or None, admin=admin)


def add_model(config: Mapping[str, Any]) -> Call:
    return Call(*_op("add_model"), json=dict(config), admin=True)


def update_model(name: str, changes: Mapping[str, Any], op: str = "update_model") -> Call:
    # Setting fields to given values: repeating it changes nothing more, so it may be retried.
    return Call(*_op(op, name=name), json=dict(changes), admin=True, idempotent=True)


def create_key(spec: Mapping[str, Any]) -> Call:
    return Call(*_op("create_key"), json=dict(spec), admin=True)


def revoke_key(key_id: str) -> Call:
    return Call(*_op("revoke_key", key_id=key_id), admin=True)


def rotate_key(key_id: str, options: Mapping[str, Any]) -> Call:
    return Call(*_op("rotate_key", key_id=key_id), json=dict(options), admin=True)


def usage_params(start: str | None, end: str | None, group_by: str | Iterable[str] | None) -> dict[str, str | None]:
    grouping = group_by if group_by is None or isinstance(group_by, str) else ",".join(group_by)
    return {"from": start, "to": end, "group_by": grouping}
