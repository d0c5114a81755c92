"""Compile AIModels, RoutingPolicies and CostBudgets into one gateway's config (pure).

The result is validated with the gateway's own `parse_config` before anything is written, so an
invalid compile can never reach a ConfigMap. References that do not resolve are dropped from the
config (the rest keeps serving) and reported as `Problem`s, which become conditions on the
objects that hold them.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from pydantic import ValidationError

from aimm_gateway.config import (
    ConfigError,
    GatewayConfig,
    ModelConfig,
    config_hash,
    describe_validation_error,
    parse_config,
)
from aimm_operator.crd.aimodel import AIModelSpec
from aimm_operator.objects import Budget, Gateway, Model, Policy, Snapshot

CONFIG_KEY = "config.yaml"
CONFIG_DIR = "/etc/aimm"
LISTEN_PORT = 8080
ENV_API_KEY = "AIMM_API_KEY"
ENV_ADMIN_TOKEN = "AIMM_ADMIN_TOKEN"
ENV_REDIS_URL = "AIMM_REDIS_URL"
ENV_DATABASE_URL = "AIMM_DATABASE_URL"
MODEL_KEY_PREFIX = "AIMM_KEY_"


@dataclass(frozen=True)
class Problem:
    """Something wrong with one object, reported as a condition on it."""

    kind: str
    name: str
    condition: str  # the condition type it turns False: ResolvedRefs, Ready, Stalled ...
    reason: str
    message: str


@dataclass(frozen=True)
class SecretEnv:
    """An env variable of the gateway container filled from a Secret key."""

    env: str
    secret: str
    key: str


@dataclass(frozen=True)
class Compiled:
    """One gateway's compiled config, or why it could not be compiled."""

    gateway: str
    config: GatewayConfig | None
    config_yaml: str | None
    config_hash: str | None
    restart_hash: str
    secret_env: tuple[SecretEnv, ...]
    models: tuple[str, ...] = ()
    policies: tuple[str, ...] = ()
    routes: tuple[str, ...] = ()
    budgets: tuple[str, ...] = ()
    problems: tuple[Problem, ...] = ()
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None and self.config_yaml is not None


# ------------------------------------------------------------------------------ helpers
def sanitize_env(name: str) -> str:
    return re.sub(r"[^A-Z0-9]", "_", name.upper())


def model_key_envs(model_names: list[str]) -> dict[str, str]:
    """Env variable per model name; names that sanitize alike get a short hash to stay distinct."""
    base = {name: MODEL_KEY_PREFIX + sanitize_env(name) for name in model_names}
    counts: dict[str, int] = {}
    for env in base.values():
        counts[env] = counts.get(env, 0) + 1
    out = {}
    for name, env in base.items():
        if counts[env] > 1:
            env = f"{env}_{hashlib.sha256(name.encode()).hexdigest()[:6].upper()}"
        out[name] = env
    return out


def valid_time_zone(name: str) -> bool:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return False
    return True


def model_config_dict(name: str, spec: AIModelSpec, key_env: str | None) -> dict[str, Any]:
    """The ModelConfig (gateway schema) for one AIModel."""
    out: dict[str, Any] = {
        "name": name,
        "provider": spec.provider,
        "model": spec.model,
        "pricing": {
            "input_per_1k": str(spec.pricing.input_per1k),
            "output_per_1k": str(spec.pricing.output_per1k),
        },
        "context_window": spec.context_window,
        "max_output_tokens": spec.max_tokens,
        "capabilities": sorted(spec.capabilities),
        "quality": spec.quality,
        "enabled": spec.enabled,
        "weight": spec.weight,
        "priority": spec.priority,
        "headers": dict(spec.headers),
    }
    if spec.pricing.cached_input_per1k is not None:
        out["pricing"]["cached_input_per_1k"] = str(spec.pricing.cached_input_per1k)
    if spec.endpoint:
        out["base_url"] = spec.endpoint
    if key_env:
        out["api_key"] = {"env": key_env}
    if spec.timeouts is not None:
        out["timeouts"] = spec.timeouts.to_config()
    if spec.circuit_breaker is not None:
        out["circuit_breaker"] = spec.circuit_breaker.to_config()
    if spec.mock is not None:
        out["mock"] = {
            "latency_ms": spec.mock.latency_ms,
            "stream_chunks": spec.mock.stream_chunks,
            "chunk_interval_ms": spec.mock.chunk_interval_ms,
        }
    return out


def model_problem(model: Model) -> Problem | None:
    """Why an AIModel can never go into a config (a Stalled spec), or None."""
    if model.spec is None:
        return Problem("AIModel", model.name, "Stalled", "InvalidSpec", model.spec_error or "spec does not parse")
    try:
        ModelConfig.model_validate(model_config_dict(model.name, model.spec, None))
    except ValidationError as exc:
        return Problem("AIModel", model.name, "Stalled", "InvalidSpec", describe_validation_error(exc))
    return None


def policy_missing_models(policy: Policy, known: set[str]) -> list[str]:
    """AIModel names a policy references that do not exist in the namespace."""
    if policy.spec is None:
        return []
    missing: list[str] = []
    for route in policy.spec.routes:
        for name in [t.model for t in route.targets] + list(route.fallbacks or policy.spec.fallback):
            if name not in known and name not in missing:
                missing.append(name)
    return missing


def canonical_yaml(config: GatewayConfig) -> str:
    data = config.model_dump(mode="json", exclude_none=True)
    for model in data.get("models", []):
        model["capabilities"] = sorted(model.get("capabilities", []))
    return yaml.safe_dump(data, sort_keys=False, width=120)


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


# ------------------------------------------------------------------------------ compile
@dataclass
class _Builder:
    gateway: Gateway
    problems: list[Problem] = field(default_factory=list)

    def problem(self, kind: str, name: str, condition: str, reason: str, message: str) -> None:
        self.problems.append(Problem(kind, name, condition, reason, message))


def selected_models(gateway: Gateway, snapshot: Snapshot) -> list[Model]:
    assert gateway.spec is not None
    return [
        m
        for m in snapshot.models
        if not m.deleting and gateway.spec.model_selector.matches(dict(m.labels)) and model_problem(m) is None
    ]


def selected_policies(gateway: Gateway, snapshot: Snapshot) -> list[Policy]:
    assert gateway.spec is not None
    routing = gateway.spec.routing
    return [
        p
        for p in snapshot.policies
        if not p.deleting
        and p.spec is not None
        and (routing.policy_selector.matches(dict(p.labels)) or p.name == routing.default_policy)
    ]


def compile_gateway(gateway: Gateway, snapshot: Snapshot) -> Compiled:
    """The config for `gateway`, from everything in its namespace it selects."""
    b = _Builder(gateway)
    spec = gateway.spec
    if spec is None:
        return Compiled(gateway.name, None, None, None, "", (), error=gateway.spec_error or "spec does not parse")

    models = selected_models(gateway, snapshot)
    model_names = [m.name for m in models]
    known = set(model_names)
    key_envs = model_key_envs([m.name for m in models if m.spec and m.spec.api_key_secret_ref])
    secret_env: list[SecretEnv] = []
    model_dicts = []
    for m in models:
        assert m.spec is not None
        ref = m.spec.api_key_secret_ref
        env = key_envs.get(m.name) if ref else None
        if ref is not None and env is not None:
            secret_env.append(SecretEnv(env, ref.name, ref.key))
        model_dicts.append(model_config_dict(m.name, m.spec, env))

    # Routes, in policy-name order; the first policy to claim a route name keeps it.
    routes: list[dict[str, Any]] = []
    route_owner: dict[str, str] = {}
    policies = selected_policies(gateway, snapshot)
    used_policies: list[str] = []
    for policy in policies:
        assert policy.spec is not None
        pspec = policy.spec
        used = False
        for route in pspec.routes:
            where = f"route {route.name!r}"
            if route.name in known:
                b.problem(
                    "RoutingPolicy",
                    policy.name,
                    "Ready",
                    "RouteNameConflict",
                    f"{where} has the name of an AIModel in AIGateway {gateway.name!r}; route skipped",
                )
                continue
            if route.name in route_owner:
                b.problem(
                    "RoutingPolicy",
                    policy.name,
                    "Ready",
                    "RouteConflict",
                    f"{where} is already defined by RoutingPolicy {route_owner[route.name]!r} "
                    f"in AIGateway {gateway.name!r}; route skipped",
                )
                continue
            targets: list[dict[str, Any]] = []
            for t in route.targets:
                if t.model in known:
                    targets.append({"model": t.model, "weight": t.weight, "priority": t.priority})
                elif any(m.name == t.model for m in snapshot.models):
                    b.problem(
                        "RoutingPolicy",
                        policy.name,
                        "ResolvedRefs",
                        "ModelNotSelected",
                        f"{where}: AIModel {t.model!r} is not served by AIGateway {gateway.name!r}",
                    )
            fallbacks = []
            for name in route.fallbacks if route.fallbacks is not None else pspec.fallback:
                if name in known:
                    fallbacks.append(name)
                elif any(m.name == name for m in snapshot.models):
                    b.problem(
                        "RoutingPolicy",
                        policy.name,
                        "ResolvedRefs",
                        "ModelNotSelected",
                        f"{where}: fallback AIModel {name!r} is not served by AIGateway {gateway.name!r}",
                    )
            if not any(float(t["weight"]) > 0 for t in targets):
                b.problem(
                    "RoutingPolicy",
                    policy.name,
                    "Ready",
                    "NoTargets",
                    f"{where} has no usable target in AIGateway {gateway.name!r}; route skipped",
                )
                continue
            rc: dict[str, Any] = {
                "name": route.name,
                "targets": targets,
                "algorithm": route.algorithm or pspec.algorithm,
                "fallbacks": fallbacks,
                "factors": pspec.intelligent_factors.model_dump(),
                "exploration": pspec.exploration,
                "retries": pspec.retries.to_config(),
                "circuit_breaker": pspec.circuit_breaker.to_config(),
                "hedging": {
                    "enabled": pspec.hedging.enabled,
                    "delay_s": pspec.hedging.delay_seconds,
                    "max_hedges": pspec.hedging.max_hedges,
                },
                "queue_timeout_s": pspec.queue_timeout_seconds,
            }
            if pspec.timeouts is not None:
                rc["timeouts"] = pspec.timeouts.to_config()
            routes.append(rc)
            route_owner[route.name] = policy.name
            used = True
        if used:
            used_policies.append(policy.name)
    route_names = [r["name"] for r in routes]
    callable_names = known | set(route_names)

    # Gateway-wide defaults: routing.* overrides the default policy's.
    routing = spec.routing
    default_policy = next((p for p in policies if p.name == routing.default_policy), None)
    if routing.default_policy and default_policy is None:
        b.problem(
            "AIGateway",
            gateway.name,
            "ResolvedRefs",
            "RoutingPolicyNotFound",
            f"routing.defaultPolicy: RoutingPolicy {routing.default_policy!r} not found",
        )
    retries = routing.retries or (default_policy.spec.retries if default_policy and default_policy.spec else None)
    breaker = routing.circuit_breaker or (
        default_policy.spec.circuit_breaker if default_policy and default_policy.spec else None
    )
    default_model = routing.default_route
    if default_model is None and default_policy is not None and default_policy.spec is not None:
        default_model = default_policy.spec.routes[0].name
    if default_model is not None and default_model not in callable_names:
        b.problem(
            "AIGateway",
            gateway.name,
            "ResolvedRefs",
            "DefaultRouteNotFound",
            f"default route {default_model!r} is neither a served AIModel nor a route",
        )
        default_model = None

    budgets, budget_names = _compile_budgets(b, gateway, snapshot, models, callable_names)

    secret_env.extend(_gateway_secret_env(gateway))
    auth: dict[str, Any] = {"enabled": spec.auth.enabled, "api_keys": []}
    if spec.auth.api_key_secret_ref is not None:
        auth["api_keys"] = [{"name": "default", "key": {"env": ENV_API_KEY}}]
    admin: dict[str, Any] = {}
    if spec.auth.admin_token_secret_ref is not None:
        admin["token"] = {"env": ENV_ADMIN_TOKEN}
    server: dict[str, Any] = {
        "host": "0.0.0.0",
        "port": LISTEN_PORT,
        "max_body_bytes": spec.server.max_body_bytes,
        "upstream_client": spec.server.upstream_client,
        "reload_interval_s": spec.server.reload_interval_seconds,
        "max_connections_per_upstream": spec.server.max_connections_per_upstream,
    }
    if default_model is not None:
        server["default_model"] = default_model
    data: dict[str, Any] = {
        "server": server,
        "auth": auth,
        "admin": admin,
        "models": model_dicts,
        "routes": routes,
        "budgets": budgets,
    }
    if retries is not None:
        data["retries"] = retries.to_config()
    if breaker is not None:
        data["circuit_breaker"] = breaker.to_config()

    restart_hash = sha256(
        json.dumps(
            {
                "server": {k: v for k, v in server.items() if k != "default_model"},
                "env": [(e.env, e.secret, e.key) for e in secret_env],
            },
            sort_keys=True,
        )
    )[:16]
    try:
        config = parse_config(data, f"AIGateway {gateway.namespace}/{gateway.name}")
    except ConfigError as exc:
        return Compiled(
            gateway.name,
            None,
            None,
            None,
            restart_hash,
            tuple(secret_env),
            problems=tuple(b.problems),
            error=str(exc),
        )
    text = canonical_yaml(config)
    return Compiled(
        gateway=gateway.name,
        config=config,
        config_yaml=text,
        config_hash=config_hash(config),
        restart_hash=restart_hash,
        secret_env=tuple(secret_env),
        models=tuple(model_names),
        policies=tuple(used_policies),
        routes=tuple(route_names),
        budgets=tuple(budget_names),
        problems=tuple(b.problems),
    )


def _gateway_secret_env(gateway: Gateway) -> list[SecretEnv]:
    assert gateway.spec is not None
    spec = gateway.spec
    out = []
    for env, ref in (
        (ENV_API_KEY, spec.auth.api_key_secret_ref),
        (ENV_ADMIN_TOKEN, spec.auth.admin_token_secret_ref),
        (ENV_REDIS_URL, spec.redis.url_secret_ref if spec.redis else None),
        (ENV_DATABASE_URL, spec.database.url_secret_ref if spec.database else None),
    ):
        if ref is not None:
            out.append(SecretEnv(env, ref.name, ref.key))
    return out


def budget_problem(budget: Budget, gateway_names: set[str]) -> Problem | None:
    """Why a CostBudget can never work (Stalled) or names a missing gateway (ResolvedRefs), or None."""
    if budget.spec is None:
        return Problem("CostBudget", budget.name, "Stalled", "InvalidSpec", budget.spec_error or "spec does not parse")
    if not valid_time_zone(budget.spec.time_zone):
        return Problem(
            "CostBudget",
            budget.name,
            "Stalled",
            "InvalidTimeZone",
            f"timeZone {budget.spec.time_zone!r} is not an IANA time zone",
        )
    gw = budget.spec.scope.gateway
    if gw is not None and gw not in gateway_names:
        return Problem("CostBudget", budget.name, "ResolvedRefs", "GatewayNotFound", f"AIGateway {gw!r} not found")
    return None


def _compile_budgets(
    b: _Builder, gateway: Gateway, snapshot: Snapshot, models: list[Model], callable_names: set[str]
) -> tuple[list[dict[str, Any]], list[str]]:
    out: list[dict[str, Any]] = []
    names: list[str] = []
    gateway_names = {g.name for g in snapshot.gateways}
    for budget in snapshot.budgets:
        if budget.deleting or budget.spec is None or budget_problem(budget, gateway_names) is not None:
            continue
        bs = budget.spec
        if bs.scope.gateway not in (None, gateway.name):
            continue
        scoped_models: list[str] = []
        if bs.scope.model_selector is not None:
            scoped_models = [m.name for m in models if bs.scope.model_selector.matches(dict(m.labels))]
            if not scoped_models:
                continue  # none of this gateway's models are in scope (an empty list would mean "all")
        action = bs.action
        downgrade_to = None
        if action == "downgrade":
            if bs.downgrade_to in callable_names:
                downgrade_to = bs.downgrade_to
            else:
                b.problem(
                    "CostBudget",
                    budget.name,
                    "ResolvedRefs",
                    "DowngradeTargetNotFound",
                    f"downgradeTo {bs.downgrade_to!r} is neither an AIModel nor a route served by AIGateway "
                    f"{gateway.name!r}; requests are blocked instead when the budget is exceeded",
                )
                action = "block"
        out.append(
            {
                "name": budget.name,
                "limit_usd": str(bs.limit_usd),
                "period": bs.period,
                "timezone": bs.time_zone,
                "models": scoped_models,
                "api_keys": list(bs.scope.api_keys),
                "thresholds": list(bs.alert_thresholds),
                "action": action,
                "downgrade_to": downgrade_to,
            }
        )
        names.append(budget.name)
    return out, names
