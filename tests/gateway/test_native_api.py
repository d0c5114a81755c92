"""The native /api/v1 API, admin model management, and the ops endpoints."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from typing import Any

import httpx
import orjson
import pytest

from tests.gateway.conftest import ADMIN_TOKEN, RunningGateway, Upstream, base_config, upstream_model

Start = Callable[[dict[str, Any]], RunningGateway]


@pytest.fixture
def gw(openai_upstream: Upstream, anthropic_upstream: Upstream, start_gateway: Start) -> RunningGateway:
    return start_gateway(
        base_config(
            [
                upstream_model("gpt", openai_upstream, pricing={"input_per_1k": "0.01", "output_per_1k": "0.03"}),
                upstream_model("claude", anthropic_upstream),
                {"name": "local", "provider": "mock"},
            ],
            routes=[{"name": "smart", "targets": [{"model": "gpt"}, {"model": "claude"}]}],
            server={"default_model": "smart"},
        )
    )


def test_query_reports_text_usage_and_exact_cost(gw: RunningGateway) -> None:
    with gw.client() as c:
        resp = c.post("/api/v1/query", json={"prompt": "What is 2+2?", "model": "gpt", "max_tokens": 50})
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert set(body) >= {"text", "model", "provider", "usage", "latency_ms", "request_id"}
    assert "What is 2+2?" in body["text"] and body["model"] == "gpt"
    usage = body["usage"]
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]
    expected = (
        Decimal(usage["prompt_tokens"]) * Decimal("0.01") + Decimal(usage["completion_tokens"]) * Decimal("0.03")
    ) / 1000
    assert Decimal(str(usage["total_cost"])) == expected
    assert body["latency_ms"] > 0


def test_query_uses_default_route_and_validates(gw: RunningGateway) -> None:
    with gw.client() as c:
        assert c.post("/api/v1/query", json={"prompt": "hi"}).json()["model"] in ("gpt", "claude")
        bad = c.post("/api/v1/query", json={"prompt": "", "model": "gpt"})
        assert bad.status_code == 400 and "prompt" in bad.json()["error"]["message"]
        typo = c.post("/api/v1/query", json={"prompt": "x", "modle": "gpt"})
        assert typo.status_code == 400 and "modle" in typo.json()["error"]["message"]


def test_query_fallback_model_is_used_when_primary_fails(gw: RunningGateway, openai_upstream: Upstream) -> None:
    openai_upstream.set_faults(fail_rate=1.0, status_code=500)
    with gw.client() as c:
        resp = c.post("/api/v1/query", json={"prompt": "hi", "model": "gpt", "fallback_model": "local"})
    assert resp.status_code == 200, resp.text
    assert resp.json()["model"] == "local"


def test_query_multiple_compares(gw: RunningGateway) -> None:
    with gw.client() as c:
        resp = c.post("/api/v1/query/multiple", json={"prompt": "Name a color", "models": ["gpt", "claude", "nope"]})
    body = resp.json()
    assert [r["model"] for r in body["results"]] == ["gpt", "claude", "nope"]
    assert body["results"][2]["error"]["code"] == "model_not_found"
    comparison = body["comparison"]
    assert comparison["succeeded"] == 2 and comparison["failed"] == 1
    assert set(comparison["latency_ms"]) == {"gpt", "claude"}
    assert 0.0 <= comparison["agreement_score"] <= 1.0
    assert comparison["cheapest_model"] == "claude"  # gpt is priced 10x in this config


def test_query_stream_ends_with_usage_event(gw: RunningGateway) -> None:
    with (
        gw.client() as c,
        c.stream("POST", "/api/v1/query/stream", json={"prompt": "tell me", "model": "claude"}) as resp,
    ):
        events = [orjson.loads(line[6:]) for line in resp.iter_lines() if line.startswith("data: ")]
    contents = [e for e in events if e["type"] == "content"]
    assert len(contents) >= 2 and all(e["text"] for e in contents)
    assert events[-1]["type"] == "usage" and events[-1]["usage"]["completion_tokens"] > 0
    assert events[-1]["usage"]["total_cost"] > 0 and events[-1]["model"] == "claude"


def test_batch_keeps_order_and_per_item_errors(gw: RunningGateway) -> None:
    items = [{"prompt": f"item {i}", "model": "gpt" if i % 2 else "claude"} for i in range(6)]
    items.insert(3, {"prompt": "broken", "model": "does-not-exist"})
    items.append({"model": "gpt"})
    with gw.client() as c:
        body = c.post("/api/v1/batch", json=items).json()
    results = body["results"]
    assert [r["index"] for r in results] == list(range(8))
    assert results[3]["error"]["code"] == "model_not_found"
    assert "prompt" in results[7]["error"]["message"]
    assert all(
        f"item {i}" in r["text"]
        for i, r in zip([0, 1, 2, 3, 4, 5], [results[j] for j in (0, 1, 2, 4, 5, 6)], strict=True)
    )
    assert body["succeeded"] == 6 and body["failed"] == 2


def test_models_and_live_metrics(gw: RunningGateway) -> None:
    with gw.client() as c:
        for _ in range(3):
            c.post("/api/v1/query", json={"prompt": "hi", "model": "gpt"})
        models = {m["name"]: m for m in c.get("/api/v1/models").json()["models"]}
        assert models["gpt"]["health"] == "healthy" and models["gpt"]["price"]["input_per_1k"] == "0.01"
        assert "tools" in models["gpt"]["capabilities"] and models["gpt"]["max_tokens"] == 4096
        metrics = c.get("/api/v1/metrics").json()
    assert metrics["models"]["gpt"]["window_requests"] == 3
    assert metrics["traffic_share"]["gpt"] == 1.0
    assert metrics["latency_ms"]["p50"] is not None and metrics["error_rate"] == 0.0
    assert Decimal(metrics["cost_per_hour_usd"]) > 0


def test_admin_add_disable_status(gw: RunningGateway) -> None:
    admin = {"authorization": f"Bearer {ADMIN_TOKEN}"}
    with gw.client() as c:
        assert c.get("/admin/models/status").status_code == 403  # an API key is not the admin token
        added = c.post("/admin/models", json={"name": "extra", "provider": "mock"}, headers=admin)
        assert added.status_code == 201 and added.json()["source"] == "runtime"
        assert c.post("/admin/models", json={"name": "extra", "provider": "mock"}, headers=admin).status_code == 409
        assert c.post("/api/v1/query", json={"prompt": "hi", "model": "extra"}).status_code == 200
        patched = c.patch("/admin/models/gpt", json={"enabled": False}, headers=admin)
        assert patched.status_code == 200 and patched.json()["enabled"] is False
        assert c.post("/api/v1/query", json={"prompt": "hi", "model": "gpt"}).status_code == 503
        assert c.post("/api/v1/query", json={"prompt": "hi", "model": "smart"}).json()["model"] == "claude"
        status = {m["name"]: m for m in c.get("/admin/models/status", headers=admin).json()["models"]}
        bad = c.patch("/admin/models/gpt", json={"enabled": "maybe"}, headers=admin)
    assert status["gpt"]["enabled"] is False and status["extra"]["source"] == "runtime"
    assert bad.status_code == 400 and "enabled" in bad.json()["error"]["message"]
    # Runtime changes survive a reload of the file.
    gw.config_path.write_text(gw.config_path.read_text() + "\n")
    gw.gateway.apply_file_config(gw.gateway.file_config)
    assert "extra" in gw.gateway.runtime.models and gw.gateway.runtime.models["gpt"].enabled is False


def test_admin_weight_is_validated_visible_and_routes_by_it(
    openai_upstream: Upstream, anthropic_upstream: Upstream, start_gateway: Start
) -> None:
    gw = start_gateway(
        base_config(
            [upstream_model("gpt", openai_upstream), upstream_model("claude", anthropic_upstream)],
            routes=[
                {"name": "w", "algorithm": "weighted", "targets": [{"model": "gpt"}, {"model": "claude"}]},
                # An explicit target weight: the admin's weight replaces it too.
                {
                    "name": "pinned",
                    "algorithm": "weighted",
                    "targets": [{"model": "gpt", "weight": 5}, {"model": "claude"}],
                },
            ],
        )
    )
    admin = {"authorization": f"Bearer {ADMIN_TOKEN}"}
    with gw.client() as c:
        for body, field in (
            ({"weight": -1}, "weight"),
            ({"weight": "heavy"}, "weight"),
            ({}, "weight"),
            ({"weight": 1, "colour": "red"}, "colour"),
        ):
            bad = c.patch("/admin/models/gpt", json=body, headers=admin)
            assert bad.status_code == 400 and field in bad.json()["error"]["message"], (body, bad.text)
        assert c.patch("/admin/models/gpt", json={"weight": 2}).status_code == 403  # an API key is no admin
        patched = c.patch("/admin/models/gpt", json={"weight": 0}, headers=admin)
        assert patched.status_code == 200 and patched.json()["weight"] == 0
        listed = c.get("/api/v1/models").json()
        assert {m["name"]: m["weight"] for m in listed["models"]} == {"gpt": 0, "claude": 1}
        assert {r["name"]: r["weights"] for r in listed["routes"]} == {"w": [0, 1], "pinned": [0, 1]}
        picked = {
            c.post("/api/v1/query", json={"prompt": "hi", "model": r}).json()["model"]
            for r in ("w", "pinned")
            for _ in range(8)
        }
        assert picked == {"claude"}  # weight 0: never the weighted first pick
        # Both at 0 would leave the routes nothing to weigh: refused, nothing changed.
        refused = c.patch("/admin/models/claude", json={"weight": 0}, headers=admin)
        assert refused.status_code == 400 and refused.json()["error"]["param"] == "weight"
        assert "w, pinned" in refused.json()["error"]["message"]
        assert gw.gateway.runtime.models["claude"].weight == 1
        both = c.patch("/admin/models/gpt", json={"weight": 3, "enabled": False}, headers=admin).json()
        assert both["weight"] == 3 and both["enabled"] is False
    # Runtime weights survive a reload of the file, like enablement.
    gw.gateway.apply_file_config(gw.gateway.file_config)
    assert gw.gateway.runtime.models["gpt"].weight == 3


def test_admin_is_off_without_token(openai_upstream: Upstream, start_gateway: Start) -> None:
    config = base_config([upstream_model("gpt", openai_upstream)])
    del config["admin"]
    gw = start_gateway(config)
    with gw.client() as c:
        resp = c.get("/admin/models/status", headers={"authorization": "Bearer anything"})
    assert resp.status_code == 404 and "admin API is off" in resp.json()["error"]["message"]


def test_health_ready_and_prometheus(gw: RunningGateway, openai_upstream: Upstream) -> None:
    assert httpx.get(f"{gw.url}/health").json() == {"status": "ok"}
    assert httpx.get(f"{gw.url}/ready").status_code == 200
    with gw.client() as c:
        c.post("/v1/chat/completions", json={"model": "gpt", "messages": [{"role": "user", "content": "hi"}]})
        c.post(
            "/v1/chat/completions",
            json={"model": "gpt", "messages": [{"role": "user", "content": "hi"}], "stream": True},
        )
    text = httpx.get(f"{gw.url}/metrics").text
    for name in (
        'ai_multimodel_requests_total{model="gpt",provider="openai_compatible",status="200"} 2.0',
        "ai_multimodel_request_duration_seconds_bucket",
        "ai_multimodel_cost_usd_total",
        'ai_multimodel_model_availability{model="gpt"} 1.0',
        "ai_multimodel_input_tokens_total",
        "ai_multimodel_output_tokens_total",
        "ai_multimodel_time_to_first_token_seconds_bucket",
    ):
        assert name in text, name
    openai_upstream.set_faults(fail_rate=1.0, status_code=500)
    with gw.client() as c:
        c.post("/v1/chat/completions", json={"model": "gpt", "messages": [{"role": "user", "content": "hi"}]})
    assert (
        'ai_multimodel_errors_total{model="gpt",provider="openai_compatible",type="http"}'
        in httpx.get(f"{gw.url}/metrics").text
    )


def test_ready_is_503_without_usable_models(start_gateway: Start) -> None:
    gw = start_gateway(
        base_config([{"name": "o", "provider": "openai", "api_key": {"env": "AIMM_UNSET_KEY_FOR_TEST"}}])
    )
    resp = httpx.get(f"{gw.url}/ready")
    assert resp.status_code == 503 and resp.json()["reason"] == "no usable model"


def test_feedback_reaches_the_adaptive_router(gw: RunningGateway) -> None:
    before = gw.gateway.router.snapshot().get("gpt")
    with gw.client() as c:
        ok = c.post("/api/v1/feedback", json={"model": "gpt", "score": 0.0})
        assert ok.status_code == 202
        assert c.post("/api/v1/feedback", json={"model": "gpt", "score": 3}).status_code == 400
        assert c.post("/api/v1/feedback", json={"model": "nope", "score": 1}).status_code == 404
    after = gw.gateway.router.snapshot()["gpt"]
    assert before is None or after.adaptive_mean < before.adaptive_mean
    assert after.adaptive_mean < 0.5


def test_budget_spend_is_tracked_and_exported(openai_upstream: Upstream, start_gateway: Start) -> None:
    gw = start_gateway(
        base_config(
            [upstream_model("gpt", openai_upstream), {"name": "local", "provider": "mock"}],
            budgets=[
                {"name": "gpt-only", "limit_usd": "1.00", "models": ["gpt"]},
                {"name": "other-team", "limit_usd": "1.00", "api_keys": ["someone-else"]},
            ],
        )
    )
    with gw.client() as c:
        costs = [
            c.post("/api/v1/query", json={"prompt": "hi", "model": m}).json()["usage"]["total_cost"]
            for m in ("gpt", "gpt", "local")
        ]
        stats = c.get("/api/v1/stats").json()  # the viewer role at least (a developer key here)
    assert Decimal(stats["budgets"]["gpt-only"]["spent_usd"]) == Decimal(str(costs[0])) + Decimal(str(costs[1]))
    assert "other-team" not in stats["budgets"]
    metrics = httpx.get(f"{gw.url}/metrics").text
    assert 'ai_multimodel_budget_used_ratio{budget="gpt-only"}' in metrics
