"""StageAssembly: chains built once per runtime snapshot and route, and only from stages a route needs."""

from __future__ import annotations

from aimm_gateway.runtime import Runtime
from aimm_gateway.stages.assembly import StageAssembly
from aimm_gateway.stages.auth import ModelScope
from aimm_gateway.stages.base import Stage, StageDeps
from aimm_gateway.stages.budget import BudgetStage
from aimm_gateway.stages.chain import EMPTY
from aimm_gateway.stages.telemetry import TelemetryStage
from tests.unit.stage_fixtures import Deps, Recorder, context, mock_model, runtime

BUDGET = {"name": "monthly", "limit_usd": "10", "period": "monthly"}
ROUTES = [{"name": "smart", "targets": [{"model": "a"}, {"model": "b"}]}]


def only_on_smart(rt: Runtime, name: str, deps: StageDeps) -> Stage | None:
    return Recorder([], name) if name == "smart" else None


def test_default_order_is_telemetry_key_scope_and_key_budget_without_budgets() -> None:
    # Auth is on (the default): every route checks the caller's model scope and, since any key may
    # carry a budget_usd (also one created over the API), the key's budget; nothing else joins.
    rt = runtime([mock_model("a"), mock_model("b")], ROUTES)
    assembly = StageAssembly(Deps().stage_deps)
    stages = [type(s) for s in assembly.chain(context(rt, "smart")).stages]
    assert stages == [TelemetryStage, ModelScope, BudgetStage]


def test_without_auth_or_budgets_only_telemetry_joins() -> None:
    rt = runtime([mock_model("a")], auth={"enabled": False})
    assert [type(s) for s in StageAssembly(Deps().stage_deps).chain(context(rt, "a")).stages] == [TelemetryStage]


def test_budget_stage_joins_when_the_config_has_budgets() -> None:
    rt = runtime([mock_model("a")], budgets=[BUDGET])
    chain = StageAssembly(Deps().stage_deps).chain(context(rt, "a"))
    assert [type(s) for s in chain.stages] == [TelemetryStage, ModelScope, BudgetStage]


def test_chains_are_built_per_route_once_per_snapshot() -> None:
    rt = runtime([mock_model("a"), mock_model("b")], ROUTES)
    assembly = StageAssembly(Deps().stage_deps, order=(only_on_smart,))
    smart = assembly.chain(context(rt, "smart"))
    assert [s.name for s in smart.stages] == ["recorder"]
    assert assembly.chain(context(rt, "smart")) is smart  # cached
    assert assembly.chain(context(rt, "a")) is EMPTY  # a route that needs nothing pays nothing
    reloaded = runtime([mock_model("a"), mock_model("b")], ROUTES)
    assert assembly.chain(context(reloaded, "smart")) is not smart  # a new snapshot, new chains


def test_unknown_names_share_one_chain() -> None:
    rt = runtime([mock_model("a")])
    built: list[str] = []

    def counting(rt: Runtime, name: str, deps: StageDeps) -> Stage | None:
        built.append(name)
        return Recorder([], name)

    assembly = StageAssembly(Deps().stage_deps, order=(counting,))
    first = assembly.chain(context(rt, "nope-1"))
    assert assembly.chain(context(rt, "nope-2")) is first
    assert built == [""]
