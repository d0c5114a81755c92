"""A plain answer goes out before the bookkeeping that need not precede it, and that bookkeeping
is done before the request's task yields: spend and usage are never invisible to the caller's
next request. Successes settle per model once per loop turn, with exact totals after a burst."""

from __future__ import annotations

import asyncio
import logging
import random
from decimal import Decimal
from typing import Any, ClassVar

import orjson
import pytest

from aimm_gateway.api.common import json_response
from aimm_gateway.budget.services import CostServices
from aimm_gateway.config import GatewayConfig
from aimm_gateway.pipeline import ChatPipeline
from aimm_gateway.routing import RouterState
from aimm_gateway.routing.clock import FakeClock
from aimm_gateway.security.audit import AuditLog
from aimm_gateway.security.metrics import SecurityMetrics
from aimm_gateway.security.services import SecurityServices
from aimm_gateway.stages import budget, telemetry
from aimm_gateway.stages.assembly import ORDER
from aimm_gateway.stages.base import Outcome, RequestContext, Stage, StageDeps, StageFactory
from tests.backing import RedisServer
from tests.unit.stage_fixtures import Deps, Recorder, context, mock_model, runtime

SCOPE: dict[str, Any] = {"type": "http", "method": "POST", "path": "/v1/chat/completions", "headers": []}


async def _receive() -> dict[str, Any]:
    return {"type": "http.disconnect"}


class Sent:
    """The ASGI messages a response sent, and what `probe` read when its body went out."""

    def __init__(self, probe: Any = None) -> None:
        self.messages: list[dict[str, Any]] = []
        self.probe, self.at_body = probe, None

    async def __call__(self, message: dict[str, Any]) -> None:
        self.messages.append(message)
        if message["type"] == "http.response.body" and self.probe is not None:
            self.at_body = self.probe()

    @property
    def body(self) -> Any:
        return orjson.loads(b"".join(m.get("body", b"") for m in self.messages if m["type"] == "http.response.body"))


def stages(*made: Stage) -> tuple[StageFactory, ...]:
    def factory(stage: Stage) -> StageFactory:
        return lambda rt, name, deps: stage

    return tuple(factory(s) for s in made)


async def _serve(pipeline: ChatPipeline, ctx: RequestContext, sent: Sent) -> Outcome:
    answered = await pipeline.answer(ctx)
    await json_response(answered.outcome.response, after=answered.after)(SCOPE, _receive, sent)
    return answered.outcome


async def test_the_answer_is_sent_before_the_after_hooks_and_spend_is_visible_when_the_send_returns() -> None:
    deps = Deps()
    rt = runtime([mock_model("a", price="0.5")], budgets=[{"name": "all", "limit_usd": "100", "period": "monthly"}])
    pipeline = deps.pipeline((telemetry.build, budget.build))
    in_flight = deps.metrics.in_flight

    def probe() -> tuple[float, dict[str, Decimal]]:
        return in_flight.value, deps.stats.budget_spend()

    sent = Sent(probe)
    outcome = await _serve(pipeline, context(rt, "a"), sent)
    # When the body went out, neither the telemetry stage nor the budget settle had run ...
    assert sent.at_body == (1.0, {})
    assert sent.body["choices"][0]["message"]["content"]
    # ... and when the send returned (no loop turn in between), both had: the caller's next request sees the spend.
    assert outcome.cost > 0 and deps.stats.budget_spend() == {"all": outcome.cost}
    assert in_flight.value == 0


async def test_the_client_gets_the_answer_when_an_after_hook_raises_and_the_error_is_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    class Broken(Recorder):
        name: ClassVar[str] = "broken"

        async def after(self, ctx: RequestContext, outcome: Outcome) -> None:
            raise RuntimeError("bug in an observing hook")

    log: list[str] = []
    outer = Recorder(log, "outer")
    pipeline = Deps().pipeline(stages(outer, Broken(log, "broken")))
    sent = Sent()
    with caplog.at_level(logging.ERROR, logger="aimm.gateway"):
        await _serve(pipeline, context(runtime([mock_model("a")]), "a"), sent)
    assert sent.body["object"] == "chat.completion"
    assert "stage broken failed after request rid-1" in caplog.text
    assert "bug in an observing hook" in caplog.text  # the traceback is logged, not lost
    assert log[-1] == "after:outer"  # the hooks after it still ran


async def test_a_hook_that_rewrites_the_answer_runs_before_it_is_sent() -> None:
    class Redact(Recorder):
        name: ClassVar[str] = "redact"
        after_before_answer: ClassVar[bool] = True

        async def after(self, ctx: RequestContext, outcome: Outcome) -> None:
            await super().after(ctx, outcome)
            assert outcome.response is not None
            outcome.response["choices"][0]["message"]["content"] = "[redacted]"

    log: list[str] = []
    pipeline = Deps().pipeline(stages(Recorder(log, "outer"), Redact(log, "redact")))
    sent = Sent(lambda: list(log))
    await _serve(pipeline, context(runtime([mock_model("a")]), "a"), sent)
    assert sent.body["choices"][0]["message"]["content"] == "[redacted]"
    assert sent.at_body == ["before:outer", "before:redact", "after:redact"]
    assert log[-1] == "after:outer"


async def test_a_burst_of_answers_settles_per_model_per_loop_turn_with_exact_totals() -> None:
    deps = Deps()
    rt = runtime([mock_model("a"), mock_model("b")])
    pipeline = deps.pipeline(stages(Recorder([])))
    router: RouterState = pipeline._ledger.router
    learned: list[tuple[str, int]] = []
    learn = router.learn

    def counting(name: str, answers: Any) -> None:
        learned.append((name, len(answers)))
        learn(name, answers)

    router.learn = counting  # type: ignore[method-assign]
    contexts = [context(rt, "a" if i % 3 else "b") for i in range(30)]
    outcomes = await asyncio.gather(*(_serve(pipeline, ctx, Sent()) for ctx in contexts))
    await asyncio.sleep(0)  # the loop turn they were answered in has ended
    per_model = deps.stats.per_model()
    snapshot = router.snapshot()
    for name, count in (("a", 20), ("b", 10)):
        assert sum(n for m, n in learned if m == name) == count
        assert per_model[name]["requests_total"] == count and snapshot[name].successes == count
        assert snapshot[name].in_flight == 0
        mine = [o for o in outcomes if o.model == name]
        tokens = sum(o.usage.prompt_tokens for o in mine)
        assert _sample(deps, "input_tokens_total", name) == tokens
        assert _sample(deps, "requests_total", name, status="200") == count
        assert Decimal(per_model[name]["cost_usd_total"]) == sum((o.cost for o in mine), Decimal(0))
    assert len(learned) < 30  # settled together, not one update per answer


def _sample(deps: Deps, metric: str, model: str, **labels: str) -> float | None:
    value: float | None = deps.metrics.registry.get_sample_value(
        f"ai_multimodel_{metric}", {"model": model, "provider": "mock", **labels}
    )
    return value


def test_settling_answers_together_teaches_routing_what_one_at_a_time_does() -> None:
    clock_one, clock_all = FakeClock(), FakeClock()
    one, together = RouterState(clock_one, random.Random(1)), RouterState(clock_all, random.Random(1))
    answers = [(0.2, 0.001), (0.5, 0.003), (0.05, 0.0), (1.5, 0.02)]
    for state, clock in ((one, clock_one), (together, clock_all)):  # some history, then time passes
        state.on_start("m")
        state.on_success("m", 0.3, Decimal("0.002"))
        clock.advance(7.0)
    for latency, cost in answers:
        one.on_start("m")
        one.on_success("m", latency, Decimal(str(cost)))
        together.on_start("m")
    for _ in answers:
        together.on_answered("m")
    together.learn("m", answers)
    a, b = one.snapshot()["m"], together.snapshot()["m"]
    assert (
        (a.successes, a.in_flight, a.circuit_state) == (b.successes, b.in_flight, b.circuit_state) == (5, 0, "closed")
    )
    for field in ("latency_ewma_s", "latency_p95_s", "success_rate", "adaptive_mean"):
        assert getattr(a, field) == pytest.approx(getattr(b, field), rel=1e-12), field
    sa, sb = one._stat("m"), together._stat("m")
    assert (sa.cost_ewma, sa.alpha, sa.beta, sa.lat_seq) == pytest.approx((sb.cost_ewma, sb.alpha, sb.beta, sb.lat_seq))


def _chain_names(deps: Deps, **config: Any) -> tuple[list[str], list[str]]:
    """The stage names of model `a`'s chain: those whose `after` runs after the send, and before it."""
    rt = runtime([mock_model("a")], budgets=[{"name": "all", "limit_usd": "1"}], cache={"enabled": True}, **config)
    chain = deps.pipeline(ORDER)._stages.chain(context(rt, "a"))
    names = [s.name for s in chain.stages]
    return names[: chain.split], names[chain.split :]


async def test_stages_that_settle_over_redis_or_rewrite_the_answer_finish_before_it_is_sent(
    redis_server: RedisServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    in_process = Deps()
    security = SecurityServices(AuditLog(None), SecurityMetrics(in_process.metrics))
    in_process.stage_deps = StageDeps(in_process.metrics, in_process.stats, in_process.cost, security=security)
    after_send, before_send = _chain_names(in_process)
    assert "budget" in after_send and "cache" in after_send and before_send == []  # in-process: after the send
    redacting = {"enabled": True, "default": {"pii": "redact", "responses": True}}
    after_send, before_send = _chain_names(in_process, guards=redacting)
    assert before_send == ["guard", "budget", "cache"]  # the guard rewrites the answer: it and what follows go first
    flagging = {"enabled": True, "default": {"pii": "flag"}}
    assert _chain_names(in_process, guards=flagging)[1] == []  # a guard that only reads the request: no `after`

    fleet = Deps()
    monkeypatch.setenv("AIMM_PERF6_REDIS_URL", redis_server.url)
    redis = {"url": {"env": "AIMM_PERF6_REDIS_URL"}, "key_prefix": "perf6:"}
    config = GatewayConfig.model_validate({"state": {"redis": redis}})
    fleet.cost = CostServices(config, fleet.metrics)
    fleet.stage_deps = StageDeps(fleet.metrics, fleet.stats, fleet.cost)
    try:
        assert _chain_names(fleet)[1] == ["budget", "cache"]  # settled over Redis: awaited before the send
    finally:
        await fleet.cost.state.close()  # type: ignore[attr-defined]
