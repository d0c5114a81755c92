"""StageChain alone: order, reverse settle, short-circuit, refusals, chunk hooks."""

from __future__ import annotations

import logging
from typing import ClassVar

import pytest

from aimm_gateway.canonical import ChatChunk, ChatCompletion
from aimm_gateway.errors import RateLimited
from aimm_gateway.stages.base import Outcome, RequestContext
from aimm_gateway.stages.chain import EMPTY, StageChain
from tests.unit.stage_fixtures import Recorder, context, mock_model, runtime


@pytest.fixture
def ctx() -> RequestContext:
    return context(runtime([mock_model("m")]), "m")


class Refuse(Recorder):
    name: ClassVar[str] = "refuse"

    async def before(self, ctx: RequestContext) -> ChatCompletion | None:
        self.log.append(f"before:{self.tag}")
        raise RateLimited("slow down")


class BrokenAfter(Recorder):
    async def after(self, ctx: RequestContext, outcome: Outcome) -> None:
        raise RuntimeError("bug in a stage")


async def test_before_in_order_after_in_reverse(ctx: RequestContext) -> None:
    log: list[str] = []
    chain = StageChain([Recorder(log, "a"), Recorder(log, "b"), Recorder(log, "c")])
    ran, answer = await chain.before(ctx)
    assert (ran, answer) == (3, None)
    await chain.after(ctx, Outcome(ok=True), ran)
    assert log == ["before:a", "before:b", "before:c", "after:c", "after:b", "after:a"]


async def test_short_circuit_stops_the_chain_and_only_ran_stages_settle(ctx: RequestContext) -> None:
    log: list[str] = []
    cached: ChatCompletion = {"id": "x", "choices": []}
    chain = StageChain([Recorder(log, "a"), Recorder(log, "cache", answer=cached), Recorder(log, "late")])
    ran, answer = await chain.before(ctx)
    assert ran == 2 and answer is cached
    await chain.after(ctx, Outcome(ok=True, cache_hit=True), ran)
    assert log == ["before:a", "before:cache", "after:cache", "after:a"]


async def test_a_refusal_settles_the_stages_before_it_and_propagates(ctx: RequestContext) -> None:
    log: list[str] = []
    first = Recorder(log, "a")
    chain = StageChain([first, Refuse(log, "limit"), Recorder(log, "never")])
    with pytest.raises(RateLimited):
        await chain.before(ctx)
    assert log == ["before:a", "before:limit", "after:a"]
    assert first.outcomes[0].status == 429 and isinstance(first.outcomes[0].error, RateLimited)


async def test_a_failing_after_is_logged_and_the_others_still_run(
    ctx: RequestContext, caplog: pytest.LogCaptureFixture
) -> None:
    log: list[str] = []
    chain = StageChain([Recorder(log, "a"), BrokenAfter(log, "broken")])
    ran, _ = await chain.before(ctx)
    with caplog.at_level(logging.ERROR, logger="aimm.gateway"):
        await chain.after(ctx, Outcome(ok=True), ran)
    assert log[-1] == "after:a"
    assert "stage recorder failed after request rid-1" in caplog.text


def test_chunk_hooks_are_collected_once_and_may_rewrite_or_drop(ctx: RequestContext) -> None:
    def upper(_: RequestContext, chunk: ChatChunk) -> ChatChunk | None:
        return {**chunk, "id": chunk["id"].upper()}

    def drop_empty(_: RequestContext, chunk: ChatChunk) -> ChatChunk | None:
        return chunk if chunk.get("choices") else None

    chain = StageChain(
        [Recorder([], "a"), Recorder([], "b", chunk_hook=upper), Recorder([], "c", chunk_hook=drop_empty)]
    )
    assert chain.chunk_hooks == (upper, drop_empty)
    assert chain.on_chunk(ctx, {"id": "abc", "choices": [{}]}) == {"id": "ABC", "choices": [{}]}
    assert chain.on_chunk(ctx, {"id": "abc", "choices": []}) is None


def test_a_chain_without_hooking_stages_has_no_chunk_hooks() -> None:
    assert StageChain([Recorder([], "a")]).chunk_hooks == ()
    assert EMPTY.stages == () and EMPTY.chunk_hooks == ()


async def test_a_run_settles_on_exit_with_the_error_or_defers_to_whoever_took_over(ctx: RequestContext) -> None:
    stage = Recorder([])
    chain = StageChain([stage])
    failed = Outcome(ok=False)
    with pytest.raises(RateLimited):
        async with chain.run(ctx, failed):
            raise RateLimited("upstream says slow down")
    assert stage.outcomes == [failed] and failed.status == 429 and failed.latency_s > 0

    streamed = Outcome(ok=False)
    async with chain.run(ctx, streamed) as run:
        run.handed_over = True  # a stream took over: it settles when it ends
    assert stage.outcomes == [failed]
    await run.settle()
    assert stage.outcomes == [failed, streamed]


async def test_a_run_over_an_empty_chain_calls_no_hook(ctx: RequestContext) -> None:
    outcome = Outcome(ok=True)
    async with EMPTY.run(ctx, outcome) as run:
        assert run.answer is None and run.ran == 0
    assert outcome.latency_s >= 0


class NoBefore(Recorder):
    has_before: ClassVar[bool] = False

    async def before(self, ctx: RequestContext) -> ChatCompletion | None:
        raise AssertionError("a stage declaring has_before = False is never asked")


class NoAfter(Recorder):
    has_after: ClassVar[bool] = False

    async def after(self, ctx: RequestContext, outcome: Outcome) -> None:
        raise AssertionError("a stage declaring has_after = False is never asked")


class Gated(Recorder):
    """A stage whose `after` acts only on what its `before` left in the scratch."""

    name: ClassVar[str] = "gated"
    after_needs_scratch: ClassVar[bool] = True


class Rewrites(Recorder):
    """A stage whose `after` must finish before the answer is sent."""

    after_before_answer: ClassVar[bool] = True


async def test_declared_no_op_hooks_are_skipped_and_a_refusal_still_settles_what_came_before(
    ctx: RequestContext,
) -> None:
    log: list[str] = []
    chain = StageChain([Recorder(log, "a"), NoBefore(log, "tail"), NoAfter(log, "scope"), Recorder(log, "z")])
    ran, _ = await chain.before(ctx)
    assert ran == 4
    await chain.after(ctx, Outcome(ok=True), ran)
    assert log == ["before:a", "before:scope", "before:z", "after:z", "after:tail", "after:a"]

    log.clear()  # a refusal after a stage without `before`: that stage's `after` is still owed
    with pytest.raises(RateLimited):
        await StageChain([Recorder(log, "a"), NoBefore(log, "tail"), Refuse(log, "limit")]).before(ctx)
    assert log == ["before:a", "before:limit", "after:tail", "after:a"]


async def test_a_scratch_gated_after_runs_only_when_its_before_left_something(ctx: RequestContext) -> None:
    log: list[str] = []
    chain = StageChain([Recorder(log, "a"), Gated(log, "g")])
    await chain.after(ctx, Outcome(ok=True), 2)
    assert log == ["after:a"]
    ctx.scratch["gated"] = object()
    await chain.after(ctx, Outcome(ok=True), 2)
    assert log == ["after:a", "after:g", "after:a"]


async def test_after_hooks_split_around_the_answer_keep_their_order(ctx: RequestContext) -> None:
    log: list[str] = []
    stages = [Recorder(log, "telemetry"), Recorder(log, "usage"), Rewrites(log, "guard"), Recorder(log, "cache")]
    chain = StageChain(stages)
    assert chain.split == 2
    async with chain.run(ctx, Outcome(ok=True)) as run:
        run.handed_over = True
    await run.settle_before_answer()
    assert log[4:] == ["after:cache", "after:guard"]  # these finish before the answer is sent
    await run.settle_after_answer()
    assert log[4:] == ["after:cache", "after:guard", "after:usage", "after:telemetry"]  # the full reverse order

    log.clear()  # no stage needs to come first: every `after` runs once the answer is on its way
    plain = StageChain([Recorder(log, "a"), Recorder(log, "b")])
    assert plain.split == 2
    async with plain.run(ctx, Outcome(ok=True)) as run:
        run.handed_over = True
    await run.settle_before_answer()
    assert log == ["before:a", "before:b"]
    await run.settle_after_answer()
    assert log == ["before:a", "before:b", "after:b", "after:a"]
