"""GET /admin/audit: the audit trail, newest first, filtered and paged, each record's chain checked.

Read from the usage store's `ai_audit` when the trail is written there (`hardening.audit.store`),
else from the file sink (`hardening.audit.sink: file`); with neither, 404 (the console hides its
page then). The logic (sources, chain checks, cursors) is `security/audit_query.py`.
"""

from __future__ import annotations

from starlette.datastructures import QueryParams
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from aimm_gateway.api.analytics_routes import StoreNotConfigured, parse_time
from aimm_gateway.api.common import gateway_of, json_response
from aimm_gateway.errors import InvalidRequest, NotFound
from aimm_gateway.security.audit_query import MAX_LIMIT, AuditSource, FileAudit, StoreAudit, decode_cursor
from aimm_gateway.service import Gateway
from aimm_gateway.store.audit_rows import AuditFilter

PARAMS = ("since", "until", "actor", "action", "outcome", "limit", "cursor")
DEFAULT_LIMIT = 50


def audit_source(gateway: Gateway) -> AuditSource | None:
    """Where this gateway's audit trail can be read back (None: nowhere)."""
    sink, usage = gateway.audit_store, gateway.cost.usage
    if sink is not None and usage is not None:
        return StoreAudit(usage.store, sink.writer.flush)
    if gateway.file_config.hardening.audit.store and gateway.file_config.store is not None:
        raise StoreNotConfigured("the audit trail's usage store is unavailable (see the gateway's log)")
    path = gateway.security.audit.path
    return FileAudit(path) if path is not None else None


def _when(value: str, param: str) -> float:
    """Unix seconds, or an RFC 3339 time / date."""
    try:
        return float(value)
    except ValueError:
        return parse_time(value, param).timestamp()


def _query(q: QueryParams) -> tuple[AuditFilter, int]:
    unknown = sorted(set(q) - set(PARAMS))
    if unknown:
        raise InvalidRequest(f"{unknown[0]}: unknown parameter; use {', '.join(PARAMS)}", param=unknown[0])
    limit = q.get("limit", str(DEFAULT_LIMIT))
    if not limit.isdigit() or not 1 <= int(limit) <= MAX_LIMIT:
        raise InvalidRequest(f"limit: a whole number from 1 to {MAX_LIMIT}", param="limit")
    since = _when(q["since"], "since") if "since" in q else None
    until = _when(q["until"], "until") if "until" in q else None
    if since is not None and until is not None and since >= until:
        raise InvalidRequest("since: must be before `until`", param="since")
    try:
        before = decode_cursor(q["cursor"]) if "cursor" in q else None
    except ValueError as exc:
        raise InvalidRequest(f"cursor: {exc}", param="cursor") from None
    for name in ("actor", "action", "outcome"):
        if name in q and not 1 <= len(q[name]) <= 256:
            raise InvalidRequest(f"{name}: 1 to 256 characters", param=name)
    found = AuditFilter(since, until, q.get("actor"), q.get("action"), q.get("outcome"), before)
    return found, int(limit)


async def audit(request: Request) -> Response:
    gateway = gateway_of(request)
    query, limit = _query(request.query_params)
    source = audit_source(gateway)
    if source is None:
        raise NotFound(
            "the audit trail is not readable here: set hardening.audit.store: true (with store:) "
            "or hardening.audit.sink: file"
        )
    page = await source.page(query, limit)
    return json_response(
        {
            "object": "list",
            "data": page.records,
            "has_more": page.next_cursor is not None,
            "next_cursor": page.next_cursor,
            "source": source.name,
            "verified": page.verified,
        },
        headers={"cache-control": "no-store"},
    )


routes = [Route("/admin/audit", audit, methods=["GET"])]
