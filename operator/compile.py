"""Compile AIModels, RoutingPolicies and CostBudgets into one gateway's config (pure).

The result is validated with the gateway's own `parse_config` before anything is written, so an
invalid compile can never reach a ConfigMap. References that do not resolve are dropped from the
config (the rest keeps serving) and reported as `Problem`s, which become conditions on the
objects that hold them.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import orjson
from pydantic import ValidationError

from aimm_gateway.config import (
    ConfigError,
    GatewayConfig,
    ModelConfig,
    config_dump,
    describe_validation_error,
    dump_hash,
    parse_config,
)
from aimm_operator.crd.aimodel import AIModelSpec
from aimm_operator.crd.common import SecretKeyRef
from aimm_operator.crd.routingpolicy import Route
from aimm_operator.objects import Budget, Gateway, Model, Policy, Snapshot

CONFIG_KEY = "config.yaml"
CONFIG_DIR = "/etc/aimm"
LISTEN_PORT = 8080
ENV_API_KEY = "AIMM_API_KEY"
ENV_ADMIN_TOKEN = "AIMM_ADMIN_TOKEN"
ENV_REDIS_URL = "AIMM_REDIS_URL"
ENV_DATABASE_URL = "AIMM_DATABASE_URL"
ENV_OPERATOR_KEY = "AIMM_OPERATOR_KEY"  # the operator's viewer key (operator/viewer.py)
VIEWER_DATA_KEY = "key"
KEYS_WORKDIR = "/var/run/aimm"  # the gateway container's working directory
KEYS_SUBDIR = "keys"  # model keys: KEYS_WORKDIR/keys/<secret>/<key>, one Secret volume each


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
    config_json: str | None
    config_hash: str | None
    restart_hash: str
    secret_env: tuple[SecretEnv, ...]
    key_secrets: tuple[str, ...] = ()  # Secrets holding model keys, each mounted as one volume
    models: tuple[str, ...] = ()
    policies: tuple[str, ...] = ()
    routes: tuple[str, ...] = ()
    budgets: tuple[str, ...] = ()
    problems: tuple[Problem, ...] = ()
    error: str | None = None
    route_owners: tuple[tuple[str, str], ...] = ()  # (route, RoutingPolicy) pairs in the config

    @property
    def ok(self) -> bool:
        return self.error is None and self.config_json is not None


# ------------------------------------------------------------------------------ helpers
def key_file(ref: SecretKeyRef) -> str:
    """Where a model's key is read in the pod: relative to the container's working directory
    (KEYS_WORKDIR), under the Secret's own volume, so one volume per Secret serves every key in it."""
    return f"{KEYS_SUBDIR}/{ref.name}/{ref.key}"


def viewer_secret_name(gateway: str) -> str:
    """The Secret holding the operator's viewer key for `gateway` (made by operator/viewer.py)."""
    return f"{gateway}-operator-viewer"


def valid_time_zone(name: str) -> bool:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return False
    return True


def model_config_dict(name: str, spec: AIModelSpec, key: str | None) -> dict[str, Any]:
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
    if key:
        out["api_key"] = {"file": key}
    if spec.timeouts is not None:
        out["timeouts"] = spec.timeouts.to_config()
    if spec.circuit_breaker is not None:
        out["circuit_breaker"] = spec.circuit_breaker.to_config()
    if spec.rate_limits is not None:  # field names and units (per minute) are the gateway's own
        out["rate_limits"] = spec.rate_limits.model_dump(by_alias=False, exclude_none=True)
    if spec.mock is not None:
        out["mock"] = {
            "latency_ms": spec.mock.latency_ms,
            "stream_chunks": spec.mock.stream_chunks,
            "chunk_interval_ms": spec.mock.chunk_interval_ms,
        }
    return out


def model_problem(model: Model) -> Problem | None:
    """Why an AIModel can never go into a config (a Stalled spec), or None. Checked once per
    object: an Obj is immutable, and the check validates a whole ModelConfig."""
    cached = model.memo.get("problem", _UNCHECKED)
    if cached is _UNCHECKED:
        cached = model.memo["problem"] = _model_problem(model)
    return cached


_UNCHECKED = object()


def _model_problem(model: Model) -> Problem | None:
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


def canonical_json(config: GatewayConfig) -> tuple[str, str]:
    """The ConfigMap text and its config hash, from one dump. JSON (valid YAML too), because the
    gateway parses JSON in milliseconds with orjson where YAML takes seconds for a large config.
    Capabilities are sorted by the model's serializer, so equal configs give equal text."""
    data = config_dump(config)
    return orjson.dumps(data, option=orjson.OPT_INDENT_2).decode(), dump_hash(data)


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


# ------------------------------------------------------------------------------ compile, one kind at a time
@dataclass(frozen=True)
class Report:
    """Files problems against one object (the one problem-reporting path of every compile step)."""

    kind: str
    name: str
    sink: list[Problem]

    def add(self, condition: str, reason: str, message: str) -> None:
        self.sink.append(Problem(self.kind, self.name, condition, reason, message))


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


@dataclass(frozen=True)
class ModelsPart:
    configs: list[dict[str, Any]]
    names: tuple[str, ...]
    key_secrets: tuple[str, ...]


def compile_models(gateway: Gateway, snapshot: Snapshot) -> ModelsPart:
    """The selected, valid AIModels (an invalid one is the model's own Stalled problem, not ours).

    Keys are files from Secret volumes, re-read by the gateway when they change: adding a model
    whose key lives in an already mounted Secret, or rotating a key, leaves the pod template alone."""
    models = selected_models(gateway, snapshot)
    configs = []
    secrets: set[str] = set()
    for m in models:
        assert m.spec is not None
        ref = m.spec.api_key_secret_ref
        if ref is not None:
            secrets.add(ref.name)
        configs.append(model_config_dict(m.name, m.spec, key_file(ref) if ref else None))
    return ModelsPart(configs, tuple(m.name for m in models), tuple(sorted(secrets)))


@dataclass(frozen=True)
class RoutesPart:
    routes: list[dict[str, Any]]
    policies: tuple[str, ...]
    problems: list[Problem]
    owners: tuple[tuple[str, str], ...] = ()

    @property
    def names(self) -> list[str]:
        return [r["name"] for r in self.routes]


def _claim_order(policy: Policy, route_name: str) -> tuple[bool, str, str]:
    """Who keeps a contested route: the policy already serving it, then the oldest, then by name.

    A newcomer naming an existing route never takes it over (it gets RouteConflict)."""
    served = route_name in (policy.status.get("servedRoutes") or [])
    return (not served, policy.created, policy.name)


def compile_routes(gateway: Gateway, snapshot: Snapshot, served: set[str]) -> RoutesPart:
    """Routes of the selected RoutingPolicies; each route name has one owner (see `_claim_order`)."""
    problems: list[Problem] = []
    existing = {m.name for m in snapshot.models}
    claims = [
        (p, i, r) for p in selected_policies(gateway, snapshot) for i, r in enumerate(p.spec.routes if p.spec else [])
    ]
    claims.sort(key=lambda c: _claim_order(c[0], c[2].name))
    owner: dict[str, str] = {}
    kept: list[tuple[str, int, dict[str, Any]]] = []
    for policy, index, route in claims:
        report = Report("RoutingPolicy", policy.name, problems)
        where = f"route {route.name!r}"
        if route.name in served:
            report.add(
                "Ready",
                "RouteNameConflict",
                f"{where} has the name of an AIModel in AIGateway {gateway.name!r}; route skipped",
            )
        elif route.name in owner:
            report.add(
                "Ready",
                "RouteConflict",
                f"{where} is already served by RoutingPolicy {owner[route.name]!r} in AIGateway {gateway.name!r}; "
                "route skipped (a route keeps its current owner)",
            )
        elif (rc := _route_config(policy, route, served, existing, report, gateway.name)) is not None:
            owner[route.name] = policy.name
            kept.append((policy.name, index, rc))
    kept.sort(key=lambda k: (k[0], k[1]))
    used = tuple(dict.fromkeys(name for name, _, _ in kept))
    owners = tuple((rc["name"], name) for name, _, rc in kept)
    return RoutesPart([rc for _, _, rc in kept], used, problems, owners)


def _route_config(
    policy: Policy, route: Route, served: set[str], existing: set[str], report: Report, gateway: str
) -> dict[str, Any] | None:
    """One route's config, or None (reported) when none of its targets is served."""
    assert policy.spec is not None
    pspec = policy.spec
    where = f"route {route.name!r}"
    refs = [(t.model, "AIModel") for t in route.targets]
    refs += [(n, "fallback AIModel") for n in (route.fallbacks if route.fallbacks is not None else pspec.fallback)]
    for name, what in refs:
        if name not in served and name in existing:
            report.add(
                "ResolvedRefs", "ModelNotSelected", f"{where}: {what} {name!r} is not served by AIGateway {gateway!r}"
            )
    usable = [t for t in route.targets if t.model in served]
    if not any(t.weight > 0 for t in usable):
        report.add("Ready", "NoTargets", f"{where} has no usable target in AIGateway {gateway!r}; route skipped")
        return None
    rc: dict[str, Any] = {
        "name": route.name,
        "targets": [{"model": t.model, "weight": t.weight, "priority": t.priority} for t in usable],
        "algorithm": route.algorithm or pspec.algorithm,
        "fallbacks": [n for n, what in refs if what.startswith("fallback") and n in served],
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
    return rc


@dataclass(frozen=True)
class DefaultsPart:
    retries: dict[str, Any] | None
    circuit_breaker: dict[str, Any] | None
    default_model: str | None
    problems: list[Problem]


def compile_defaults(
    gateway: Gateway, snapshot: Snapshot, routes: RoutesPart, callable_names: set[str]
) -> DefaultsPart:
    """Gateway-wide defaults: routing.* overrides the default policy's. The default policy's
    unresolved references are the gateway's too (they decide what a request naming no model gets)."""
    assert gateway.spec is not None
    routing = gateway.spec.routing
    problems: list[Problem] = []
    report = Report("AIGateway", gateway.name, problems)
    policy = next((p for p in snapshot.policies if p.name == routing.default_policy and not p.deleting), None)
    pspec = policy.spec if policy is not None else None
    if routing.default_policy and pspec is None:
        report.add(
            "ResolvedRefs",
            "RoutingPolicyNotFound",
            f"routing.defaultPolicy: RoutingPolicy {routing.default_policy!r} not found",
        )
    if policy is not None and pspec is not None:
        missing = policy_missing_models(policy, {m.name for m in snapshot.models})
        own = [p.message for p in routes.problems if p.name == policy.name and p.condition == "ResolvedRefs"]
        if missing:
            own.insert(0, f"AIModel {', '.join(repr(n) for n in missing)} not found")
        if own:
            report.add(
                "ResolvedRefs", "DefaultPolicyUnresolved", f"routing.defaultPolicy {policy.name!r}: {'; '.join(own)}"
            )
    retries = routing.retries or (pspec.retries if pspec else None)
    breaker = routing.circuit_breaker or (pspec.circuit_breaker if pspec else None)
    default_model = routing.default_route
    if default_model is None and pspec is not None:
        default_model = pspec.routes[0].name
    if default_model is not None and default_model not in callable_names:
        report.add(
            "ResolvedRefs",
            "DefaultRouteNotFound",
            f"default route {default_model!r} is neither a served AIModel nor a route",
        )
        default_model = None
    return DefaultsPart(
        retries.to_config() if retries is not None else None,
        breaker.to_config() if breaker is not None else None,
        default_model,
        problems,
    )


@dataclass(frozen=True)
class ServerPart:
    server: dict[str, Any]
    auth: dict[str, Any]
    admin: dict[str, Any]
    secret_env: list[SecretEnv]
    backing: dict[str, Any]  # `state` and `store`: opened once per process, so they roll the pods


def compile_server(gateway: Gateway, default_model: str | None) -> ServerPart:
    """Process settings, client auth and the admin token (Secrets referenced through env)."""
    assert gateway.spec is not None
    spec = gateway.spec
    # The operator polls /api/v1/stats and /api/v1/budgets with its own viewer key (never open feeds).
    operator_key = {"name": "aimm-operator", "key": {"env": ENV_OPERATOR_KEY}, "role": "viewer"}
    auth: dict[str, Any] = {"enabled": spec.auth.enabled, "api_keys": [operator_key]}
    if spec.auth.api_key_secret_ref is not None:
        auth["api_keys"].insert(0, {"name": "default", "key": {"env": ENV_API_KEY}})
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
    backing: dict[str, Any] = {}
    if spec.redis is not None:  # budgets, limits and cache shared by every pod
        backing["state"] = {"redis": {"url": {"env": ENV_REDIS_URL}}}
    if spec.database is not None:  # the usage store; without it, no store (no history kept)
        backing["store"] = {"postgres": {"dsn": {"env": ENV_DATABASE_URL}}}
    return ServerPart(server, auth, admin, _gateway_secret_env(gateway), backing)


def compile_gateway(gateway: Gateway, snapshot: Snapshot) -> Compiled:
    """The config for `gateway`, from everything in its namespace it selects."""
    if gateway.spec is None:
        return Compiled(gateway.name, None, None, None, "", (), error=gateway.spec_error or "spec does not parse")
    models = compile_models(gateway, snapshot)
    served = set(models.names)
    routes = compile_routes(gateway, snapshot, served)
    callable_names = served | set(routes.names)
    defaults = compile_defaults(gateway, snapshot, routes, callable_names)
    budgets = compile_budgets(gateway, snapshot, models.names, callable_names)
    server = compile_server(gateway, defaults.default_model)
    problems = tuple(routes.problems + defaults.problems + budgets.problems)
    secret_env = tuple(server.secret_env)
    data: dict[str, Any] = {
        "server": server.server,
        "auth": server.auth,
        "admin": server.admin,
        "models": models.configs,
        "routes": routes.routes,
        "budgets": budgets.budgets,
        **server.backing,
    }
    # The operator writes whole configs from the API server's truth: a deliberate deletion of many
    # AIModels must reach the pods, so the gateway's guard against a truncated file is waived here.
    data["hardening"] = {"reload": {"allow_shrink": True}}
    if defaults.retries is not None:
        data["retries"] = defaults.retries
    if defaults.circuit_breaker is not None:
        data["circuit_breaker"] = defaults.circuit_breaker
    restart = {k: v for k, v in server.server.items() if k != "default_model"}
    restart_hash = sha256(
        json.dumps(
            {"server": restart, "backing": server.backing, "env": [(e.env, e.secret, e.key) for e in secret_env]},
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
            secret_env,
            models.key_secrets,
            problems=problems,
            error=str(exc),
        )
    text, digest = canonical_json(config)
    return Compiled(
        gateway=gateway.name,
        config=config,
        config_json=text,
        config_hash=digest,
        restart_hash=restart_hash,
        secret_env=secret_env,
        key_secrets=models.key_secrets,
        models=models.names,
        policies=routes.policies,
        routes=tuple(routes.names),
        budgets=budgets.names,
        problems=problems,
        route_owners=routes.owners,
    )


def _gateway_secret_env(gateway: Gateway) -> list[SecretEnv]:
    assert gateway.spec is not None
    spec = gateway.spec
    out = [SecretEnv(ENV_OPERATOR_KEY, viewer_secret_name(gateway.name), VIEWER_DATA_KEY)]
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


@dataclass(frozen=True)
class BudgetsPart:
    budgets: list[dict[str, Any]]
    names: tuple[str, ...]
    problems: list[Problem]


def compile_budgets(
    gateway: Gateway, snapshot: Snapshot, models: Sequence[str], callable_names: set[str]
) -> BudgetsPart:
    """The CostBudgets in this gateway's scope (a budget scoped to none of its models is left out)."""
    out: list[dict[str, Any]] = []
    problems: list[Problem] = []
    gateway_names = {g.name for g in snapshot.gateways}
    labels = {m.name: dict(m.labels) for m in snapshot.models}
    for budget in snapshot.budgets:
        if budget.deleting or budget.spec is None or budget_problem(budget, gateway_names) is not None:
            continue
        bs = budget.spec
        if bs.scope.gateway not in (None, gateway.name):
            continue
        scoped: list[str] = []
        if bs.scope.model_selector is not None:
            scoped = [m for m in models if bs.scope.model_selector.matches(labels.get(m, {}))]
            if not scoped:
                continue  # none of this gateway's models are in scope (an empty list would mean "all")
        action, downgrade_to = bs.action, None
        if action == "downgrade":
            if bs.downgrade_to in callable_names:
                downgrade_to = bs.downgrade_to
            else:
                Report("CostBudget", budget.name, problems).add(
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
                "models": scoped,
                "api_keys": list(bs.scope.api_keys),
                "teams": list(bs.scope.teams),
                "namespace": budget.namespace,  # the gateway's pods know theirs (POD_NAMESPACE)
                "thresholds": list(bs.alert_thresholds),
                "action": action,
                "downgrade_to": downgrade_to,
            }
        )
    return BudgetsPart(out, tuple(b["name"] for b in out), problems)
