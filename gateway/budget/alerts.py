"""Threshold alerts: once per period each, to a metric, the audit log, webhooks, and the stats feed.

The Kubernetes Event on the CostBudget is the operator's: it reads `recent` through
`GET /api/v1/budgets` (`thresholdEvents`) and emits one Event per (budget, period, threshold).
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable
from dataclasses import asdict, dataclass

import orjson

from aimm_gateway.budget.metrics import CostMetrics
from aimm_gateway.config import BudgetConfig

log = logging.getLogger("aimm.budget")
audit = logging.getLogger("aimm.audit")


@dataclass(frozen=True, slots=True)
class ThresholdEvent:
    budget: str
    threshold: int
    percent_used: str
    spent_usd: str
    limit_usd: str
    period_start: str
    period_ends: str
    action: str
    at: str

    def slack(self) -> dict[str, object]:
        text = (
            f":warning: Budget *{self.budget}* reached {self.threshold}% "
            f"(${self.spent_usd} of ${self.limit_usd}, {self.percent_used}%). "
            f"Action at 100%: {self.action}. Period ends {self.period_ends}."
        )
        return {"text": text, "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": text}}]}


Hook = Callable[[ThresholdEvent], None]


class AlertSink:
    def __init__(self, metrics: CostMetrics, keep: int = 100) -> None:
        self._metrics = metrics
        self.recent: deque[ThresholdEvent] = deque(maxlen=keep)
        self.hooks: list[Hook] = []  # e.g. the security audit trail subscribes here
        self._tasks: set[asyncio.Task[None]] = set()

    def fire(self, event: ThresholdEvent, budget: BudgetConfig) -> None:
        self._metrics.budget_thresholds.labels(event.budget, str(event.threshold)).inc()
        self.recent.append(event)
        audit.warning("budget threshold crossed %s", orjson.dumps(asdict(event)).decode())
        for hook in self.hooks:
            try:
                hook(event)
            except Exception:
                log.exception("budget alert hook failed")
        for ref, body in ((budget.webhook, asdict(event)), (budget.slack_webhook, event.slack())):
            url = ref.resolve() if ref is not None else None
            if url:
                task = asyncio.create_task(_post(url, body))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)

    async def drain(self) -> None:
        """Wait for webhooks in flight (shutdown, tests)."""
        if self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)


async def _post(url: str, body: dict[str, object]) -> None:
    import httpx  # only a gateway whose budget crosses a threshold with a webhook pays for loading it

    try:
        async with httpx.AsyncClient(timeout=5.0) as client:
            response = await client.post(url, json=body)
            if response.status_code >= 300:
                log.warning("budget webhook answered %d", response.status_code)  # the URL is a secret: not logged
    except httpx.HTTPError as exc:
        log.warning("budget webhook failed: %s", type(exc).__name__)
