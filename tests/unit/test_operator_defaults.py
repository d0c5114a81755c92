"""CRD defaults and gateway-config defaults must agree: an unset CRD field means the gateway default.

The CRD types (operator/crd/) and the gateway config (aimm_gateway.config) each declare defaults;
these tests fail as soon as one side changes without the other.
"""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import BaseModel

from aimm_gateway import config as gc
from aimm_operator.compile import compile_gateway, model_config_dict
from aimm_operator.crd import aigateway, aimodel, common, costbudget, routingpolicy
from tests.unit.operator_fixtures import budget, policy, route, snapshot
from tests.unit.operator_fixtures import model as model_body


def _dump(m: BaseModel) -> dict[str, Any]:
    return m.model_dump()  # python values: Decimal("0.0") == Decimal("0")


@pytest.mark.parametrize(
    ("crd", "gateway"),
    [
        (common.CircuitBreaker(), gc.CircuitBreakerSettings()),
        (common.Retries(), gc.RetrySettings()),
    ],
)
def test_shared_settings_defaults_match(crd: Any, gateway: BaseModel) -> None:
    assert crd.to_config() == _dump(gateway)


def test_model_defaults_match() -> None:
    spec = aimodel.AIModelSpec(provider="mock", model="m")
    compiled = gc.ModelConfig.model_validate(model_config_dict("m", spec, None))
    assert _dump(compiled) == _dump(gc.ModelConfig(name="m", provider="mock", model="m"))
    mock = aimodel.MockBehaviour()
    assert {k: getattr(mock, k) for k in ("latency_ms", "stream_chunks", "chunk_interval_ms")} == _dump(
        gc.MockSettings()
    )


def test_route_defaults_match() -> None:
    snap = snapshot(models=[model_body("a")], policies=[policy("p", [route("r", "a")])])
    c = compile_gateway(snap.gateways[0], snap)
    assert c.config is not None
    (compiled,) = c.config.routes
    expected = gc.RouteConfig(
        name="r",
        targets=[gc.RouteTarget(model="a")],
        retries=gc.RetrySettings(),
        circuit_breaker=gc.CircuitBreakerSettings(),
    )
    assert _dump(compiled) == _dump(expected)
    assert routingpolicy.IntelligentFactors().model_dump() == _dump(gc.IntelligentFactors())


def test_server_and_auth_defaults_match() -> None:
    snap = snapshot()
    c = compile_gateway(snap.gateways[0], snap)
    assert c.config is not None
    defaults = gc.ServerSettings()
    for field in ("max_body_bytes", "upstream_client", "reload_interval_s", "max_connections_per_upstream", "port"):
        assert getattr(c.config.server, field) == getattr(defaults, field), field
    assert c.config.auth.enabled == gc.AuthSettings().enabled == aigateway.Auth().enabled


def test_budget_defaults_match() -> None:
    snap = snapshot(budgets=[budget("b", 5)])
    c = compile_gateway(snap.gateways[0], snap)
    assert c.config is not None
    (b,) = c.config.budgets
    expected = gc.BudgetConfig(name="b", limit_usd=5, namespace="ns")  # the one field the operator always sets
    assert _dump(b) == _dump(expected)
    assert costbudget.CostBudgetSpec(limitUSD=5).time_zone == expected.timezone
