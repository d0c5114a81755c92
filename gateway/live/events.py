"""Pure builders of live-feed events: what a request, a metrics tick, a model change or an
alert looks like on the wire. Metadata only: never prompt or answer text."""

from __future__ import annotations

import time
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from aimm_gateway.budget.alerts import ThresholdEvent
from aimm_gateway.stages.base import Outcome, RequestContext
from aimm_gateway.stats import model_views

# The model fields whose change is an event on the `models` channel.
MODEL_FIELDS = ("enabled", "available", "circuit_state", "health", "reason")


def request_event(ctx: RequestContext, outcome: Outcome) -> dict[str, Any]:
    """One request of the live tail: who, what, how it went. No prompt, no answer, no key."""
    usage = outcome.usage
    error = outcome.error
    return {
        "request_id": ctx.request_id,
        "at": round(time.time(), 3),
        "api": ctx.api,
        "key": ctx.key_name,
        "requested": ctx.requested,
        "stream": ctx.stream,
        "model": outcome.model,
        "provider": outcome.provider,
        "status": outcome.status,
        "ok": outcome.ok,
        "latency_ms": round(outcome.latency_s * 1000, 3),
        "ttft_ms": None if outcome.ttft_s is None else round(outcome.ttft_s * 1000, 3),
        "prompt_tokens": usage.prompt_tokens,
        "completion_tokens": usage.completion_tokens,
        "cost_usd": str(outcome.spent),
        "attempts": len(outcome.attempts),
        "cache_hit": outcome.cache_hit,
        # The error's kind only: messages may quote the request.
        "error": None if error is None else {"type": error.type, "code": error.code},
    }


def metrics_event(
    summary: Mapping[str, Any], health: Mapping[str, Mapping[str, Any]], rps_now: float
) -> dict[str, Any]:
    """The `metrics` snapshot: live totals, and per model its share, latency, errors and spend."""
    fields = ("requests_total", "requests_per_minute", "error_rate", "p50_latency_ms", "p95_latency_ms")
    models = model_views(summary.get("models", {}), health, (*fields, "cost_usd_total"))
    return {
        "type": "snapshot",
        "at": round(time.time(), 3),
        "data": {
            "requests_per_second": rps_now,
            "requests_per_second_window": summary.get("requests_per_second", 0.0),
            "window_seconds": summary.get("window_seconds"),
            "requests_total": sum(m["requests_total"] for m in models.values()),
            "latency_ms": summary.get("latency_ms", {}),
            "error_rate": summary.get("error_rate", 0.0),
            "cost_per_hour_usd": summary.get("cost_per_hour_usd", "0"),
            "spend_usd_total": str(sum((Decimal(m["cost_usd_total"]) for m in models.values()), Decimal(0))),
            "models": models,
        },
    }


def model_changes(
    before: Mapping[str, Mapping[str, Any]], after: Mapping[str, Mapping[str, Any]]
) -> list[dict[str, Any]]:
    """One `models` event per model whose status, breaker or enablement changed (or that came or went)."""
    events = []
    for name in sorted(set(before) | set(after)):
        old, new = before.get(name), after.get(name)
        if old is not None and new is not None:
            changed = [f for f in MODEL_FIELDS if old.get(f) != new.get(f)]
            if not changed:
                continue
        else:
            changed = ["added" if old is None else "removed"]
        current = {f: (new or {}).get(f) for f in MODEL_FIELDS} if new is not None else None
        previous = {f: old.get(f) for f in changed if f in MODEL_FIELDS} if old is not None else None
        events.append({"type": "model", "model": name, "changed": changed, "status": current, "previous": previous})
    return events


def breaker_alerts(changes: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """An alert for every model whose circuit just opened."""
    return [
        alert(
            "breaker_open",
            "critical",
            f"circuit opened for model {c['model']}",
            model=c["model"],
            reason=(c["status"] or {}).get("reason"),
        )
        for c in changes
        if c["status"] is not None and c["status"].get("circuit_state") == "open" and "circuit_state" in c["changed"]
    ]


def budget_alert(event: ThresholdEvent) -> dict[str, Any]:
    """A budget threshold crossed (the budget enforcer fires each once per period, fleet-wide)."""
    return alert(
        "budget_threshold",
        "critical" if event.threshold >= 100 else "warning",
        f"budget {event.budget} passed {event.threshold}% (${event.spent_usd} of ${event.limit_usd})",
        budget=event.budget,
        threshold=event.threshold,
        percent_used=event.percent_used,
        spent_usd=event.spent_usd,
        limit_usd=event.limit_usd,
        action=event.action,
        period_ends=event.period_ends,
    )


def alert(kind: str, level: str, message: str, **details: Any) -> dict[str, Any]:
    return {"type": "alert", "kind": kind, "level": level, "at": round(time.time(), 3), "message": message, **details}
