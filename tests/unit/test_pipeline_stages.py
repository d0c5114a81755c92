"""The pipeline end to end over in-process mock models: stages around one attempt loop, the
Outcome they read, routing fields stages set (max cost, downgrade), and hedging up to max_hedges."""

from __future__ import annotations

import time
from decimal import Decimal
from typing import Any

import pytest

from aimm_gateway.canonical import ChatChunk, ChatCompletion
from aimm_gateway.cost import request_cost
from aimm_gateway.errors import InvalidRequest, ModelNotFound
from aimm_gateway.runtime import Runtime
from aimm_gateway.stages.base import RequestContext, Stage, StageDeps, StageFactory
from tests.unit.stage_fixtures import Deps, Recorder, context, mock_model, runtime


def with_stage(stage: Recorder) -> tuple[StageFactory, ...]:
    def build(rt: Runtime, name: str, deps: StageDeps) -> Stage | None:
        return stage

    return (build,)


def route(name: str, *targets: str, **extra: Any) -> dict[str, Any]:
    return {"name": name, "targets": [{"model": t, "priority": i} for i, t in enumerate(targets)], **extra}


async def test_a_plain_answer_fills_the_outcome_and_runs_the_stages_around_it() -> None:
    log: list[str] = []
    stage = Recorder(log)
    rt = runtime([mock_model("a", price="0.002")])
    outcome = await Deps().pipeline(with_stage(stage)).complete(context(rt, "a"))
    assert log == ["before:r", "after:r"] and stage.outcomes == [outcome]
    assert outcome.ok and outcome.status == 200 and outcome.response is not None
    assert (outcome.model, outcome.provider, outcome.route_reason) == ("a", "mock", "direct: a")
    assert outcome.usage.prompt_tokens > 0 and outcome.usage.completion_tokens > 0
    assert outcome.cost == request_cost(outcome.usage, rt.models["a"].pricing) > 0
    assert outcome.latency_s > 0
    [attempt] = outcome.attempts
    assert (attempt.model, attempt.outcome, attempt.status, attempt.hedge) == ("a", "ok", 200, False)
    assert attempt.cost == outcome.cost == outcome.spent


async def test_a_failed_request_still_settles_the_stages_with_its_error() -> None:
    stage = Recorder([])
    rt = runtime([mock_model("a")])
    with pytest.raises(ModelNotFound):
        await Deps().pipeline(with_stage(stage)).complete(context(rt, "nope"))
    [outcome] = stage.outcomes
    assert not outcome.ok and outcome.status == 404 and isinstance(outcome.error, ModelNotFound)


async def test_a_short_circuit_answer_skips_the_call() -> None:
    cached: ChatCompletion = {"id": "c1", "model": "a", "choices": [{"index": 0, "message": {"content": "hi"}}]}
    stage = Recorder([], answer=cached)
    deps = Deps()
    outcome = await deps.pipeline(with_stage(stage)).complete(context(runtime([mock_model("a")]), "a"))
    assert outcome.cache_hit and outcome.response is cached and outcome.attempts == []
    assert deps.stats.per_model() == {}  # no upstream was asked


async def test_max_cost_from_a_stage_filters_routing() -> None:
    models = [mock_model("pricey", price="100"), mock_model("cheap", price="0.0001")]
    rt = runtime(models, [route("smart", "pricey", "cheap")])
    outcome = await Deps().pipeline(with_stage(Recorder([], max_cost=Decimal("0.01")))).complete(context(rt, "smart"))
    assert outcome.model == "cheap"
    assert outcome.route_reason.endswith("; skipped 1")


async def test_a_request_over_every_cost_ceiling_is_a_400_naming_the_reason() -> None:
    rt = runtime([mock_model("pricey", price="100")], [route("smart", "pricey")])
    pipeline = Deps().pipeline(with_stage(Recorder([], max_cost=Decimal("0.0000001"))))
    with pytest.raises(InvalidRequest) as caught:
        await pipeline.complete(context(rt, "smart"))
    assert caught.value.status == 400 and caught.value.code == "no_suitable_model"
    assert "pricey: estimated cost over max_cost" in caught.value.message


async def test_downgrade_from_a_stage_routes_to_that_model_and_says_so() -> None:
    rt = runtime([mock_model("pricey", price="100"), mock_model("cheap")], [route("smart", "pricey")])
    outcome = await Deps().pipeline(with_stage(Recorder([], downgrade_to="cheap"))).complete(context(rt, "smart"))
    assert outcome.model == "cheap"
    assert outcome.route_reason == "budget downgrade to cheap: direct: cheap"


def hedged(max_hedges: int) -> dict[str, Any]:
    return route("h", "a", "b", "c", hedging={"enabled": True, "delay_s": 0.05, "max_hedges": max_hedges})


async def test_hedges_go_out_up_to_max_hedges_and_the_first_answer_wins() -> None:
    models = [mock_model("a", latency_ms=3000), mock_model("b", latency_ms=3000), mock_model("c")]
    rt = runtime(models, [hedged(2)])
    deps = Deps()
    started = time.perf_counter()
    outcome = await deps.pipeline().complete(context(rt, "h"))
    assert time.perf_counter() - started < 2
    assert outcome.model == "c" and outcome.route_reason == "hedge: c answered before a"
    assert [(a.model, a.outcome, a.hedge) for a in outcome.attempts] == [
        ("a", "cancelled", False),
        ("b", "cancelled", True),
        ("c", "ok", True),
    ]
    assert deps.metrics.hedges.labels("h").value == 2


async def test_one_hedge_by_default() -> None:
    models = [mock_model("a", latency_ms=300), mock_model("b", latency_ms=300), mock_model("c")]
    outcome = await Deps().pipeline().complete(context(runtime(models, [hedged(1)]), "h"))
    assert outcome.model in {"a", "b"}
    assert sorted(a.model for a in outcome.attempts) == ["a", "b"]  # c was never sent


async def test_a_stream_settles_the_outcome_when_it_ends_and_passes_chunk_hooks() -> None:
    seen: list[str] = []

    def hook(ctx: RequestContext, chunk: ChatChunk) -> ChatChunk | None:
        seen.append(chunk["id"])
        return None if chunk.get("usage") and not chunk.get("choices") else chunk

    stage = Recorder([], chunk_hook=hook)
    rt = runtime([mock_model("a")])
    result = await Deps().pipeline(with_stage(stage)).stream(context(rt, "a", stream=True))
    assert result.outcome.model == "a" and result.outcome.ttft_s is not None and not result.outcome.ok
    chunks = [c async for c in result.chunks]
    assert len(seen) == len(chunks) + 1  # the usage-only chunk was dropped by the hook
    assert not any(c.get("usage") and not c.get("choices") for c in chunks)
    [outcome] = stage.outcomes
    assert outcome is result.outcome and outcome.ok and outcome.status == 200
    assert outcome.usage.completion_tokens > 0 and outcome.cost > 0
    assert [a.outcome for a in outcome.attempts] == ["ok"]


async def test_a_stream_abandoned_by_the_client_settles_as_cancelled() -> None:
    stage = Recorder([])
    result = await Deps().pipeline(with_stage(stage)).stream(context(runtime([mock_model("a")]), "a", stream=True))
    first = await anext(result.chunks)
    assert first["choices"]
    await result.chunks.aclose()
    [outcome] = stage.outcomes
    assert not outcome.ok and outcome.status == 499
    assert [a.outcome for a in outcome.attempts] == ["cancelled"]


async def test_a_short_circuit_answer_to_a_stream_is_replayed_as_one_chunk() -> None:
    cached: ChatCompletion = {
        "id": "c1",
        "created": 1,
        "model": "a",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "hi"}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4},
    }
    stage = Recorder([], answer=cached)
    result = await Deps().pipeline(with_stage(stage)).stream(context(runtime([mock_model("a")]), "a", stream=True))
    assert stage.outcomes == []  # settles when the stream ends
    chunks = [c async for c in result.chunks]
    assert chunks == [
        {
            "id": "c1",
            "created": 1,
            "model": "a",
            "object": "chat.completion.chunk",
            "choices": [{"index": 0, "delta": {"role": "assistant", "content": "hi"}, "finish_reason": "stop"}],
            "usage": cached["usage"],
        }
    ]
    assert stage.outcomes == [result.outcome] and result.outcome.cache_hit and result.outcome.usage.total_tokens == 4
