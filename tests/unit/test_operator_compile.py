"""Compiling AIModels, RoutingPolicies and CostBudgets into one gateway's config."""

from __future__ import annotations

import yaml

from aimm_gateway.config import config_hash, parse_config
from aimm_operator.compile import compile_gateway
from tests.unit.operator_fixtures import budget, gw, model, policy, route, snapshot


def compiled(**kw):  # type: ignore[no-untyped-def]
    snap = snapshot(**kw)
    return compile_gateway(snap.gateways[0], snap)


def test_full_compile_is_a_valid_gateway_config() -> None:
    c = compiled(
        gateways=[
            gw(
                auth={"apiKeySecretRef": {"name": "a", "key": "k"}, "adminTokenSecretRef": {"name": "a", "key": "t"}},
                database={"urlSecretRef": {"name": "db", "key": "url"}},
                routing={"defaultRoute": "smart", "retries": {"attempts": 2}},
            )
        ],
        models=[
            model(
                "gpt-4o",
                provider="openai",
                upstream="gpt-4o-2024",
                apiKeySecretRef={"name": "keys", "key": "openai"},
                pricing={"inputPer1k": 0.0025, "outputPer1k": 0.01},
                capabilities=["vision", "chat"],
            ),
            model("echo", timeouts={"totalSeconds": 5}, circuitBreaker={"failureThreshold": 2}),
        ],
        policies=[
            policy(
                "rp",
                [route("smart", "gpt-4o", "echo")],
                algorithm="adaptive",
                fallback=["echo"],
                hedging={"enabled": True, "delaySeconds": 0.5},
            )
        ],
        budgets=[budget("b", 50, period="weekly", timeZone="Europe/Paris", action="downgrade", downgradeTo="echo")],
    )
    assert c.ok and not c.problems, c.problems
    cfg = parse_config(yaml.safe_load(c.config_json))  # the ConfigMap text round-trips
    assert cfg == c.config
    m = {x.name: x for x in cfg.models}
    assert m["gpt-4o"].upstream_model == "gpt-4o-2024" and m["gpt-4o"].api_key.file == "keys/keys/openai"
    assert str(m["gpt-4o"].pricing.input_per_1k) == "0.0025"
    assert m["echo"].timeouts.total_s == 5 and m["echo"].circuit_breaker.failure_threshold == 2
    (r,) = cfg.routes
    assert r.algorithm == "adaptive" and r.fallbacks == ["echo"] and r.hedging.delay_s == 0.5
    assert cfg.server.default_model == "smart" and cfg.server.host == "0.0.0.0" and cfg.retries.attempts == 2
    (b,) = cfg.budgets
    assert (b.period, b.timezone, b.action, b.downgrade_to) == ("weekly", "Europe/Paris", "downgrade", "echo")
    assert cfg.auth.api_keys[0].key.env == "AIMM_API_KEY" and cfg.admin.token.env == "AIMM_ADMIN_TOKEN"
    assert c.key_secrets == ("keys",)  # model keys: files from one volume per Secret, no env
    assert {(e.env, e.secret, e.key) for e in c.secret_env} == {
        ("AIMM_API_KEY", "a", "k"),
        ("AIMM_ADMIN_TOKEN", "a", "t"),
        ("AIMM_DATABASE_URL", "db", "url"),
        ("AIMM_OPERATOR_KEY", "gw-operator-viewer", "key"),
    }
    assert '"capabilities": [\n        "chat",\n        "vision"\n      ]' in c.config_json  # sorted: stable text


def test_model_keys_are_files_one_volume_per_secret() -> None:
    c = compiled(
        models=[
            model("a", apiKeySecretRef={"name": "team-keys", "key": "a"}),
            model("b", apiKeySecretRef={"name": "team-keys", "key": "b"}),
            model("c", apiKeySecretRef={"name": "other", "key": "k"}),
        ]
    )
    assert c.config is not None and c.key_secrets == ("other", "team-keys")
    assert [e.env for e in c.secret_env] == ["AIMM_OPERATOR_KEY"]  # model keys are files, not env
    assert [m.api_key.file for m in c.config.models if m.api_key] == [
        "keys/team-keys/a",
        "keys/team-keys/b",
        "keys/other/k",
    ]


def test_missing_and_unselected_targets_are_dropped_and_reported() -> None:
    c = compiled(
        gateways=[gw(modelSelector={"matchLabels": {"team": "a"}})],
        models=[model("a1", labels={"team": "a"}), model("b1", labels={"team": "b"})],
        policies=[policy("rp", [route("r", "a1", "b1", "ghost"), route("only-b", "b1")])],
    )
    assert c.ok
    (r,) = c.config.routes
    assert [t.model for t in r.targets] == ["a1"]
    reasons = {(p.name, p.condition, p.reason) for p in c.problems}
    assert ("rp", "ResolvedRefs", "ModelNotSelected") in reasons
    assert ("rp", "Ready", "NoTargets") in reasons  # only-b has nothing left


def test_route_conflicts() -> None:
    c = compiled(
        models=[model("m"), model("clash")],
        policies=[policy("a", [route("r", "m")]), policy("b", [route("r", "m"), route("clash", "m")])],
    )
    assert [r.name for r in c.config.routes] == ["r"]
    assert c.policies == ("a",)
    reasons = {p.reason for p in c.problems if p.name == "b"}
    assert reasons == {"RouteConflict", "RouteNameConflict"}


def test_policy_selector_and_default_policy() -> None:
    c = compiled(
        gateways=[gw(routing={"policySelector": {"matchLabels": {"use": "yes"}}, "defaultPolicy": "base"})],
        models=[model("m")],
        policies=[
            policy("base", [route("first", "m")], retries={"attempts": 5}, circuitBreaker={"failureThreshold": 9}),
            policy("on", [route("x", "m")], labels={"use": "yes"}),
            policy("off", [route("y", "m")]),
        ],
    )
    assert [r.name for r in c.config.routes] == ["first", "x"]
    assert c.config.server.default_model == "first"
    assert c.config.retries.attempts == 5 and c.config.circuit_breaker.failure_threshold == 9


def test_unresolved_gateway_refs() -> None:
    c = compiled(gateways=[gw(routing={"defaultRoute": "nope", "defaultPolicy": "gone"})], models=[model("m")])
    assert c.ok and c.config.server.default_model is None
    assert {p.reason for p in c.problems} == {"RoutingPolicyNotFound", "DefaultRouteNotFound"}


def test_budget_scoping() -> None:
    c = compiled(
        models=[model("p", labels={"tier": "premium"}), model("s", labels={"tier": "std"})],
        budgets=[
            budget("premium", modelSelector=None, scope={"modelSelector": {"matchLabels": {"tier": "premium"}}}),
            budget("nothing", scope={"modelSelector": {"matchLabels": {"tier": "none"}}}),  # matches no model
            budget("other-gw", scope={"gateway": "elsewhere"}),
            budget("keys", scope={"apiKeys": ["team-a"]}),
            budget("team", scope={"teams": ["payments"]}),
            budget("bad-tz", timeZone="Mars/Olympus"),
            budget("downgrade", action="downgrade", downgradeTo="missing"),
        ],
    )
    names = {b.name: b for b in c.config.budgets}
    assert set(names) == {"premium", "keys", "team", "downgrade"}  # "nothing" must not become "all models"
    assert names["premium"].models == ["p"] and names["keys"].api_keys == ["team-a"]
    assert names["team"].teams == ["payments"] and names["keys"].teams == []
    assert {b.namespace for b in c.config.budgets} == {"ns"}  # the CostBudget's: served by pods of that namespace
    assert names["downgrade"].action == "block"
    assert {p.reason for p in c.problems} == {"DowngradeTargetNotFound"}


def test_invalid_model_is_left_out() -> None:
    c = compiled(models=[model("ok"), model("bad", provider="openai_compatible")])  # no endpoint
    assert [m.name for m in c.config.models] == ["ok"]


def test_config_hash_is_canonical() -> None:
    a = compiled(models=[model("m", capabilities=["tools", "chat", "json"])])
    b = compiled(models=[model("m", capabilities=["json", "chat", "tools"])])
    assert a.config_hash == b.config_hash == config_hash(a.config) and len(a.config_hash) == 16
    assert a.config_json == b.config_json


def test_restart_hash_ignores_models_and_routes() -> None:
    base = compiled(models=[model("m", weight=1)])
    edited = compiled(models=[model("m", weight=5), model("n")], policies=[policy("p", [route("r", "m")])])
    assert base.restart_hash == edited.restart_hash and base.config_hash != edited.config_hash
    keyed = compiled(models=[model("m", apiKeySecretRef={"name": "s", "key": "k"})])
    # A new Secret changes the template through its volume (see render), not through the hash.
    assert keyed.restart_hash == base.restart_hash and keyed.key_secrets == ("s",)
    server = compiled(gateways=[gw(server={"upstreamClient": "httpx"})], models=[model("m")])
    assert server.restart_hash != base.restart_hash


def test_invalid_spec_is_an_error_not_a_config() -> None:
    snap = snapshot(gateways=[gw(replicas={"min": "lots"})])
    c = compile_gateway(snap.gateways[0], snap)
    assert not c.ok and c.error and "replicas.min" in c.error


def test_rate_limits_map_to_the_gateway_fields_and_units() -> None:
    """Every CRD rateLimits field reaches the gateway's model rate_limits under the same meaning
    (per minute); a field added to one model but not the other fails here."""
    from aimm_gateway.config import ModelRateLimits
    from aimm_operator.crd.aimodel import RateLimits

    assert set(RateLimits.model_fields) == set(ModelRateLimits.model_fields)
    c = compiled(
        models=[
            model("a", rateLimits={"requestsPerMinute": 7, "tokensPerMinute": 9000}),
            model("b", rateLimits={"requestsPerMinute": 3}),
            model("c"),
        ]
    )
    assert c.ok, c.error
    m = {x.name: x for x in parse_config(yaml.safe_load(c.config_json)).models}
    assert (m["a"].rate_limits.requests_per_minute, m["a"].rate_limits.tokens_per_minute) == (7, 9000)
    assert (m["b"].rate_limits.requests_per_minute, m["b"].rate_limits.tokens_per_minute) == (3, None)
    assert m["c"].rate_limits is None


def test_operator_polls_with_its_own_viewer_key_not_open_feeds() -> None:
    """The stats feeds need the viewer role: the operator's key (from its Secret, through env) is a
    viewer key in the config, and the feeds are never opened to callers without credentials."""
    for auth in ({}, {"apiKeySecretRef": {"name": "a", "key": "k"}}, {"enabled": False}):
        c = compiled(gateways=[gw(auth=auth)])
        assert c.config is not None, c.error
        assert c.config.auth.stats_without_credentials is False
        (op,) = [k for k in c.config.auth.api_keys if k.name == "aimm-operator"]
        assert op.role.value == "viewer" and op.key.env == "AIMM_OPERATOR_KEY" and op.key.file is None
        assert ("AIMM_OPERATOR_KEY", "gw-operator-viewer", "key") in {(e.env, e.secret, e.key) for e in c.secret_env}
        assert "sk-" not in c.config_json  # a reference, never a key
