"""Threat detection and data protection on the request path (and optionally on answers).

Before the call: the prompt-injection score of the user-supplied text (0-10, explained by
rule ids) and PII findings, acted on per the route's policy (`off | flag | redact | block`).
The score goes into `x-aimm-guard-score`, a histogram, and the audit trail when anything was
found. Answers: plain ones are redacted in `after`; streams through a chunk hook that holds
back a short tail (StreamRedactor), so a value split across chunks is still caught and the
SSE framing (built from chunks later) is untouched.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, ClassVar

from aimm_gateway.canonical import ChatChunk, ChatCompletion, validate_chat
from aimm_gateway.config import GuardPolicy
from aimm_gateway.errors import GatewayError
from aimm_gateway.runtime import Runtime
from aimm_gateway.security.detectors import Detectors, StreamRedactor
from aimm_gateway.security.services import SecurityServices
from aimm_gateway.stages.base import ChunkHook, Outcome, RequestContext, StageDeps


class Blocked(GatewayError, status=400, type="invalid_request_error", code="content_blocked"): ...


def text_slots(messages: list[Any]) -> Iterator[tuple[dict[str, Any], str]]:
    """(container, key) of every text a caller wrote: string contents and text parts."""
    for msg in messages:
        if not isinstance(msg, dict) or msg.get("role") not in ("user", "system", "developer", "tool"):
            continue
        content = msg.get("content")
        if isinstance(content, str):
            yield msg, "content"
        elif isinstance(content, list):
            for part in content:
                if isinstance(part, dict) and isinstance(part.get("text"), str):
                    yield part, "text"


class Guard:
    name: ClassVar[str] = "guard"

    def __init__(self, detectors: Detectors, policy: GuardPolicy, security: SecurityServices, route: str) -> None:
        self._d = detectors
        self._p = policy
        self._sec = security
        self._route = route
        self._kinds = tuple(policy.pii_types) if policy.pii != "off" else ()
        self._score = security.metrics.guard_score.labels(route)  # resolved once, not per request
        self.chunk_hook: ChunkHook | None = self._on_chunk if policy.responses and policy.pii == "redact" else None
        # `after` redacts plain answers: it runs only when asked to, and before the answer is sent.
        self.has_after = self.after_before_answer = bool(policy.responses and self._kinds)

    async def before(self, ctx: RequestContext) -> ChatCompletion | None:
        slots = list(text_slots(ctx.body.get("messages") or []))
        text = "\n".join(c[k] for c, k in slots)
        score = self._d.injection(text) if self._p.injection != "off" else None
        findings = self._d.pii(text, self._kinds) if self._kinds else []
        value = score.score if score is not None else 0.0
        ctx.response_headers["x-aimm-guard-score"] = f"{value:g}"
        self._score.observe(value)
        blocked = self._decide(value, bool(findings))
        if (score is not None and score.rules) or findings:
            self._audit(ctx, value, score.rules if score else (), sorted({f.kind for f in findings}), blocked, text)
        if blocked is not None:
            raise Blocked(blocked)
        if findings and self._p.pii == "redact":
            for container, key in slots:
                container[key] = self._d.redact(container[key], self._kinds)[0]
            ctx.request = validate_chat(ctx.body)
        return None

    def _decide(self, score: float, pii: bool) -> str | None:
        if self._p.injection == "block" and score >= self._p.block_score:
            self._sec.metrics.guard_actions.labels(self._route, "block", "injection").inc()
            self._sec.metrics.guard_blocked("prompt_injection")
            return f"request blocked by the prompt-injection guard (score {score:g} of 10)"
        if pii and self._p.pii == "block":
            self._sec.metrics.guard_actions.labels(self._route, "block", "pii").inc()
            self._sec.metrics.guard_blocked("pii")
            return "request blocked: it contains personal data or a credential"
        if score >= self._p.block_score:
            self._sec.metrics.guard_actions.labels(self._route, "flag", "injection").inc()
        if pii:
            self._sec.metrics.guard_actions.labels(self._route, self._p.pii, "pii").inc()
        return None

    def _audit(
        self,
        ctx: RequestContext,
        score: float,
        rules: tuple[str, ...],
        kinds: list[str],
        blocked: str | None,
        text: str,
    ) -> None:
        extra = {"prompt": text[:2000]} if self._p.log_prompts else {}
        self._sec.audit.record(
            "guard.block" if blocked else "guard.flag",
            actor=ctx.identity,
            target=self._route,
            outcome="denied" if blocked else "ok",
            request_id=ctx.request_id,
            score=score,
            rules=list(rules),
            pii=kinds,
            **extra,
        )

    async def after(self, ctx: RequestContext, outcome: Outcome) -> None:
        if not (self._p.responses and self._kinds) or outcome.response is None:
            return
        for choice in outcome.response.get("choices") or []:
            message = choice.get("message") or {}
            if isinstance(message.get("content"), str):
                redacted, found = self._d.redact(message["content"], self._kinds)
                if found:
                    message["content"] = redacted
                    self._sec.metrics.guard_actions.labels(self._route, "redact", "response").inc()

    def _on_chunk(self, ctx: RequestContext, chunk: ChatChunk) -> ChatChunk | None:
        redactors: dict[int, StreamRedactor] = ctx.scratch.setdefault(self.name, {})
        for choice in chunk.get("choices") or []:
            index = choice.get("index", 0)
            redactor = redactors.get(index)
            if redactor is None:
                redactor = redactors[index] = StreamRedactor(self._d, self._kinds)
            delta = choice.get("delta") or {}
            text = delta.get("content")
            out = redactor.feed(text) if isinstance(text, str) else ""
            if choice.get("finish_reason"):
                out += redactor.flush()
            if isinstance(text, str) or out:
                delta["content"] = out
                choice["delta"] = delta
        return chunk


def build(rt: Runtime, name: str, deps: StageDeps) -> Guard | None:
    settings = rt.config.guards
    if not settings.enabled or deps.security is None:
        return None
    policy = settings.policy_for(name)
    if policy.injection == "off" and policy.pii == "off":
        return None
    return Guard(deps.security.detectors(settings), policy, deps.security, name or "unknown")
