"""Analytics and budget status: thin handlers over analytics/ and budget/status.py."""

from __future__ import annotations

import asyncio
import io
from datetime import UTC, date, datetime, timedelta
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from aimm_gateway.analytics.aggregate import GROUPS, aggregate, savings, to_csv, top_consumers, totals
from aimm_gateway.analytics.periods import period_range
from aimm_gateway.api.common import authenticate, gateway_of, json_response
from aimm_gateway.budget.status import budget_status, threshold_events
from aimm_gateway.errors import GatewayError, InvalidRequest
from aimm_gateway.service import Gateway

MAX_RANGE = timedelta(days=92)


class StoreNotConfigured(GatewayError, status=503, type="service_unavailable", code="usage_store_unavailable"): ...


def parse_time(value: str, param: str) -> datetime:
    """An RFC 3339 time or a date (UTC midnight) from a query parameter; 400 naming `param` otherwise."""
    try:
        if len(value) == 10:
            d = date.fromisoformat(value)
            return datetime(d.year, d.month, d.day, tzinfo=UTC)
        ts = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise InvalidRequest(f"{param}: expected an RFC 3339 time or a date, got {value!r}", param=param) from None
    return ts if ts.tzinfo is not None else ts.replace(tzinfo=UTC)


def _range(request: Request) -> tuple[datetime, datetime]:
    now = datetime.now(UTC)
    q = request.query_params
    until = parse_time(q["to"], "to") if "to" in q else now
    since = parse_time(q["from"], "from") if "from" in q else until - timedelta(days=1)
    if since >= until:
        raise InvalidRequest("from: must be before `to`", param="from")
    if until - since > MAX_RANGE:
        raise InvalidRequest("from: the range is limited to 92 days (use daily reports beyond)", param="from")
    return since, until


async def _rows(gateway: Gateway, since: datetime, until: datetime) -> list[dict[str, Any]]:
    if not gateway.cost.store_ready:
        raise StoreNotConfigured("usage analytics need the usage store (`store:` in the gateway config)")
    assert gateway.cost.usage is not None
    await gateway.cost.usage.writer.flush()  # include this replica's rows still queued
    return await gateway.cost.usage.store.fetch(int(since.timestamp() * 1000), int(until.timestamp() * 1000))


async def usage(request: Request) -> Response:
    gateway = gateway_of(request)
    authenticate(request, gateway)
    since, until = _range(request)
    group_by = request.query_params.get("group_by", "model")
    if group_by not in GROUPS:
        raise InvalidRequest(f"group_by: choose one of {', '.join(GROUPS)}", param="group_by")
    fmt = request.query_params.get("format", "json")
    if fmt not in ("json", "csv"):
        raise InvalidRequest("format: json or csv", param="format")
    rows = await _rows(gateway, since, until)
    groups = aggregate(rows, group_by)
    if fmt == "csv":
        headers = {"content-disposition": f'attachment; filename="usage-by-{group_by}.csv"'}
        return Response(to_csv(groups, group_by), media_type="text/csv", headers=headers)
    return json_response(
        {
            "from": since.isoformat(),
            "to": until.isoformat(),
            "group_by": group_by,
            "totals": totals(rows),
            "groups": groups,
            "savings": savings(rows),
        }
    )


async def top(request: Request) -> Response:
    gateway = gateway_of(request)
    authenticate(request, gateway)
    since, until = _range(request)
    by = request.query_params.get("by", "key")
    limit = request.query_params.get("limit", "10")
    if not limit.isdigit() or not 1 <= int(limit) <= 1000:
        raise InvalidRequest("limit: a whole number from 1 to 1000", param="limit")
    try:
        entries = top_consumers(await _rows(gateway, since, until), by, int(limit))
    except ValueError as exc:
        raise InvalidRequest(str(exc), param="by") from None
    return json_response({"from": since.isoformat(), "to": until.isoformat(), "by": by, "top": entries})


async def report(request: Request) -> Response:
    gateway = gateway_of(request)
    authenticate(request, gateway)
    period = request.query_params.get("period", datetime.now(UTC).strftime("%Y-%m"))
    try:
        since, until, label = period_range(period)
    except ValueError as exc:
        raise InvalidRequest(str(exc), param="period") from None
    rows = await _rows(gateway, since, until)
    statuses = await budget_status(gateway.cost, gateway.runtime.config.budgets, min(until, datetime.now(UTC)))
    pdf = await asyncio.to_thread(_render_pdf, label, rows, statuses)  # CPU-bound: off the event loop
    headers = {"content-disposition": f'attachment; filename="aimm-report-{period}.pdf"'}
    return Response(pdf, media_type="application/pdf", headers=headers)


def _render_pdf(label: str, rows: list[dict[str, Any]], statuses: list[dict[str, Any]]) -> bytes:
    """In a worker thread: reportlab (~12 MB) is imported on the first report, and not on the loop."""
    from aimm_gateway.analytics.report import write_pdf

    buf = io.BytesIO()
    write_pdf(buf, label, rows, statuses)
    return buf.getvalue()


async def budgets(request: Request) -> Response:
    """Aggregates for the operator, like /api/v1/stats (no per-request data, no secrets)."""
    gateway = gateway_of(request)
    statuses = await budget_status(gateway.cost, gateway.runtime.config.budgets, gateway.cost.budgets.clock())
    return json_response({"budgets": statuses, "thresholdEvents": threshold_events(gateway.cost)})


routes = [
    Route("/api/v1/analytics/usage", usage, methods=["GET"]),
    Route("/api/v1/analytics/top", top, methods=["GET"]),
    Route("/api/v1/analytics/report", report, methods=["GET"]),
    Route("/api/v1/budgets", budgets, methods=["GET"]),
]
