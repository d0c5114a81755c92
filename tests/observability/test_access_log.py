"""The access log: one JSON line per request, metadata only, successes sampled, failures always."""

from __future__ import annotations

import asyncio
import io
import sys
from decimal import Decimal

import orjson
import pytest

from aimm_gateway.backlog import Backlog
from aimm_gateway.canonical import Usage
from aimm_gateway.config import ObservabilitySettings
from aimm_gateway.errors import NoUsableModel
from aimm_gateway.metrics import GatewayMetrics
from aimm_gateway.security.identity import Identity, Role
from aimm_gateway.stages.base import AttemptRecord, Outcome
from aimm_gateway.stages.telemetry import TelemetryStage
from aimm_gateway.telemetry.access_log import AccessLog
from aimm_gateway.telemetry.parts import Telemetry
from tests.observability.helpers import context, runtime

PROMPT = "my secret prompt text"


def ok_outcome() -> Outcome:
    return Outcome(
        ok=True,
        model="gpt",
        provider="openai",
        usage=Usage(prompt_tokens=12, completion_tokens=34),
        cost=Decimal("0.0012"),
        attempts=[
            AttemptRecord("claude", "anthropic", "timeout", 504, 0.5),
            AttemptRecord("gpt", "openai", "ok", 200, 0.2),
        ],
    )


async def run(log: AccessLog, outcome: Outcome) -> None:
    rt = runtime()
    stage = TelemetryStage(GatewayMetrics(), "smart", None, log)
    body = {"model": "smart", "messages": [{"role": "user", "content": PROMPT}]}
    ctx = context(rt, "smart", request_id="req-42", body=body, identity=Identity("team-a", Role.USER))
    await stage.before(ctx)
    await stage.after(ctx, outcome)


async def test_one_json_line_with_the_request_metadata() -> None:
    out = io.StringIO()
    await run(AccessLog(1.0, out), ok_outcome())
    lines = out.getvalue().splitlines()
    assert len(lines) == 1
    record = orjson.loads(lines[0])
    assert record["request_id"] == "req-42"
    assert record["key"] == "team-a"
    assert record["route"] == "smart"
    assert (record["model"], record["provider"], record["status"]) == ("gpt", "openai", 200)
    assert (record["input_tokens"], record["output_tokens"]) == (12, 34)
    assert record["cost_usd"] == "0.0012"
    assert record["attempts"] == 2
    assert record["cache"] == "miss"
    assert record["latency_ms"] >= 0
    assert PROMPT not in lines[0]


async def test_successes_are_sampled_and_failures_always_logged() -> None:
    out = io.StringIO()
    log = AccessLog(0.25, out, rand=iter([0.1, 0.9, 0.3, 0.2]).__next__)
    for _ in range(4):
        await run(log, ok_outcome())
    assert len(out.getvalue().splitlines()) == 2  # 0.1 and 0.2 fall under 0.25
    failed = Outcome(ok=False, error=NoUsableModel("all down"), status=503)
    for _ in range(3):
        await run(AccessLog(0.0, out), failed)
    lines = out.getvalue().splitlines()
    assert len(lines) == 5
    assert orjson.loads(lines[-1])["error"] == {"type": NoUsableModel.type, "code": NoUsableModel.code}


class CountingStdout(io.StringIO):
    def __init__(self) -> None:
        super().__init__()
        self.writes = 0

    def write(self, text: str) -> int:
        self.writes += 1
        return super().write(text)


async def test_a_busy_worker_writes_stdout_once_per_loop_turn(monkeypatch: pytest.MonkeyPatch) -> None:
    stdout = CountingStdout()
    monkeypatch.setattr(sys, "stdout", stdout)
    backlog = Backlog()
    backlog.in_flight = 2  # other requests in flight: the batch goes out right after this turn
    log = AccessLog(1.0, backlog=backlog)  # no stream: the gateway's own stdout, batched
    for _ in range(3):  # three requests ending in the same turn
        await run(log, ok_outcome())
    assert stdout.writes == 0  # not yet: the batch goes out in the loop's next turn
    await asyncio.sleep(0)
    assert stdout.writes == 1
    lines = stdout.getvalue().splitlines()
    assert len(lines) == 3 and all(orjson.loads(line)["request_id"] == "req-42" for line in lines)
    await run(log, ok_outcome())
    log.flush()  # what shutdown does: nothing left behind
    assert stdout.writes == 2 and len(stdout.getvalue().splitlines()) == 4


async def test_an_idle_worker_holds_its_lines_until_the_backlog_runs(monkeypatch: pytest.MonkeyPatch) -> None:
    stdout = CountingStdout()
    monkeypatch.setattr(sys, "stdout", stdout)
    backlog = Backlog(delay_s=60)  # no timer within the test: only `run` writes
    log = AccessLog(1.0, backlog=backlog)
    for _ in range(2):
        await run(log, ok_outcome())
    await asyncio.sleep(0)
    assert stdout.writes == 0  # held: the worker writes them when it next waits on an upstream
    backlog.upstream_waiting()
    assert stdout.writes == 1 and len(stdout.getvalue().splitlines()) == 2


def test_config_switches_the_log_off() -> None:
    parts = Telemetry(io.StringIO())
    assert parts.access_log(ObservabilitySettings.model_validate({"access_log": {"enabled": False}})) is None
    on = ObservabilitySettings.model_validate({"access_log": {"sample_rate": 0.5}})
    assert parts.access_log(on) is parts.access_log(on)  # one per setting, not one per snapshot
    assert parts.tracing(ObservabilitySettings()) is None  # tracing is off by default


def test_the_bench_measures_every_variant_through_the_pipeline() -> None:
    """`make bench`'s telemetry figures run (no timing asserted here: targets live in the bench)."""
    from aimm_gateway.telemetry.bench import BASELINE, VARIANTS, bench_telemetry

    figures = bench_telemetry(n=20, rounds=1)
    assert set(figures) == {BASELINE, *VARIANTS}
    assert all(us > 0 for us in figures.values())
