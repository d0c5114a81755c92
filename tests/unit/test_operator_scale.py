"""The control plane at scale (issue 15), where the logic is pure: 5,000 models in one ConfigMap,
gateways that load it, and a stats poll that merges once, not once per model."""

from __future__ import annotations

import base64
from collections.abc import Iterable
from decimal import Decimal
from pathlib import Path

from aimm_gateway.config import config_hash, load_config
from aimm_operator import render
from aimm_operator.compile import compile_gateway
from aimm_operator.reconcile import CONFIGMAP_BUDGET, MergedStats, config_map_error
from aimm_operator.stats import GatewayStats, ModelAggregate, StatsCache
from tests.unit.operator_fixtures import model, policy, route, snapshot


def _models(n: int) -> list[dict]:
    return [
        model(
            f"team{i % 50}-model-{i}",
            provider="openai",
            upstream=f"gpt-4o-mini-{i % 7}",
            labels={"team": f"t{i % 50}"},
            apiKeySecretRef={"name": f"keys-team{i % 50}", "key": f"model-{i}"},
            pricing={"inputPer1k": 0.00015, "outputPer1k": 0.0006},
            headers={"x-team": f"t{i % 50}"},
        )
        for i in range(n)
    ]


def test_five_thousand_models_fit_one_config_map_far_from_its_limit(tmp_path: Path) -> None:
    models = _models(5000)
    policies = [
        policy(f"p{t}", [route(f"team{t}", *[f"team{t}-model-{i}" for i in range(t, 300, 50)])]) for t in range(50)
    ]
    snap = snapshot(models=models, policies=policies)
    c = compile_gateway(snap.gateways[0], snap)
    assert c.ok and len(c.models) == 5000 and len(c.routes) == 50, c.error
    cm = render.config_map(snap.gateways[0], c)
    assert "data" not in cm and config_map_error(cm) is None
    size = len(cm["binaryData"]["config.yaml"])
    assert size < CONFIGMAP_BUDGET / 3, size  # the limit stays far away
    # What the kubelet writes into the pod (binaryData decoded), and what the gateway loads from it.
    path = tmp_path / "config.yaml"
    path.write_bytes(base64.b64decode(cm["binaryData"]["config.yaml"]))
    assert config_hash(load_config(path)) == c.config_hash


def test_small_configs_stay_readable() -> None:
    snap = snapshot(models=_models(3))
    cm = render.config_map(snap.gateways[0], compile_gateway(snap.gateways[0], snap))
    assert "binaryData" not in cm and cm["data"]["config.yaml"].startswith("{")


class CountingCache(StatsCache):
    def __init__(self) -> None:
        super().__init__(max_age_s=60)
        self.merges = 0

    def merged(self, namespace: str, gateways: Iterable[str]) -> GatewayStats | None:
        self.merges += 1
        return super().merged(namespace, gateways)


def test_stats_poll_merges_once_per_gateway_set_not_per_model() -> None:
    cache = CountingCache()
    n = 2000
    aggs = {f"m{i}": ModelAggregate(requests_total=i, cost_usd=Decimal(i), pods=1) for i in range(n)}
    cache.put("ns", "a", GatewayStats(models=aggs))
    cache.put("ns", "b", GatewayStats(models=aggs))
    merged = MergedStats(cache, "ns")
    totals = [merged.of(["a", "b"]).models[f"m{i}"].requests_total for i in range(n)]  # type: ignore[union-attr]
    totals += [merged.of(["b", "a"]).models["m1"].requests_total]  # type: ignore[union-attr]
    assert cache.merges == 1 and totals[:3] == [0, 2, 4] and totals[-1] == 2
    assert merged.of(["a"]).models["m5"].requests_total == 5 and cache.merges == 2  # type: ignore[union-attr]
