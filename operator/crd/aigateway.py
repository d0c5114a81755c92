"""AIGateway: a fleet of gateway pods (Deployment, Service, HPA, PDB, config) run by the operator."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import ConfigDict, Field, JsonValue

from aimm_operator.crd.common import (
    NAME_MAX,
    SHORT_MAX,
    ApiModel,
    CircuitBreaker,
    Condition,
    LabelSelector,
    Retries,
    SecretKeyRef,
    StatusBase,
    cel,
    conditions_field,
)

DEFAULT_IMAGE = "ghcr.io/aimm/ai-multimodel:0.1.0"

IntOrString = int | str
_INT_OR_PERCENT: dict[str, JsonValue] = {"x-kubernetes-int-or-string": True, "pattern": "^[0-9]+%?$"}


class Replicas(ApiModel):
    """Bounds of the gateway fleet; the HorizontalPodAutoscaler scales between them."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                cel("self.min <= self.max", "replicas.min must be less than or equal to replicas.max")
            ]
        }
    )

    min: int = Field(5, ge=1, le=1000, description="Fewest gateway pods.")
    max: int = Field(50, ge=1, le=1000, description="Most gateway pods.")


class Resources(ApiModel):
    """Compute resources of a gateway container (quantities such as 500m or 1Gi)."""

    requests: dict[str, IntOrString] = Field(
        default_factory=lambda: dict[str, IntOrString](cpu="250m", memory="256Mi"),
        max_length=8,
        description="Resources reserved per pod; CPU requests are what autoscaling percentages refer to.",
        json_schema_extra={"additionalProperties": {"x-kubernetes-int-or-string": True}},
    )
    limits: dict[str, IntOrString] = Field(
        default_factory=lambda: dict[str, IntOrString](memory="1Gi"),
        max_length=8,
        description="Upper limits per pod.",
        json_schema_extra={"additionalProperties": {"x-kubernetes-int-or-string": True}},
    )


class ServiceSpec(ApiModel):
    """The Service in front of the gateway pods."""

    type: Literal["ClusterIP", "NodePort", "LoadBalancer"] = Field("ClusterIP", description="Service type.")
    port: int = Field(80, ge=1, le=65535, description="Port the Service exposes (pods listen on 8080).")


class Rollout(ApiModel):
    """Rolling-update strategy of the Deployment; maxUnavailable also sizes the PodDisruptionBudget."""

    max_surge: IntOrString = Field(
        2, description="Extra pods during a rollout (count or percentage).", json_schema_extra=_INT_OR_PERCENT
    )
    max_unavailable: IntOrString = Field(
        1,
        description="Pods that may be unavailable during a rollout or disruption (count or percentage).",
        json_schema_extra=_INT_OR_PERCENT,
    )


class Routing(ApiModel):
    """Which RoutingPolicies apply and what a request that names no model gets."""

    policy_selector: LabelSelector = Field(
        default_factory=LabelSelector,
        description="RoutingPolicies (in this namespace) whose routes this gateway serves; default all.",
    )
    default_policy: str | None = Field(
        None,
        max_length=NAME_MAX,
        description="RoutingPolicy whose retries and circuit breaker are the gateway-wide defaults and whose "
        "first route serves requests that name no model.",
    )
    default_route: str | None = Field(
        None,
        max_length=NAME_MAX,
        description="Route or AIModel used when a request names none (overrides defaultPolicy's).",
    )
    retries: Retries | None = Field(None, description="Gateway-wide retry defaults (overrides defaultPolicy's).")
    circuit_breaker: CircuitBreaker | None = Field(
        None, description="Gateway-wide circuit-breaker defaults (overrides defaultPolicy's)."
    )


class Auth(ApiModel):
    """Client authentication and the admin API."""

    enabled: bool = Field(True, description="Require a bearer API key on every API call.")
    api_key_secret_ref: SecretKeyRef | None = Field(
        None, description="Secret key holding the API key clients present (env AIMM_API_KEY)."
    )
    admin_token_secret_ref: SecretKeyRef | None = Field(
        None,
        description="Secret key holding the /admin bearer token (env AIMM_ADMIN_TOKEN); without it no admin.",
    )


class Backing(ApiModel):
    """A backing service reached through a URL kept in a Secret."""

    url_secret_ref: SecretKeyRef = Field(..., description="Secret key holding the connection URL.")


class Server(ApiModel):
    """Gateway process settings that need a pod restart to change."""

    max_body_bytes: int = Field(4 * 1024 * 1024, gt=0, description="Larger request bodies get HTTP 413.")
    upstream_client: Literal["h1", "aiohttp", "httpx"] = Field(
        "h1", description="Upstream HTTP client: h1 (least CPU per request), aiohttp or httpx."
    )
    max_connections_per_upstream: int = Field(1000, gt=0, description="Connection pool size per upstream.")
    reload_interval_seconds: float = Field(1.0, gt=0, description="How often the config file is checked for changes.")


class Alerts(ApiModel):
    """Thresholds of the PrometheusRule alerts."""

    error_rate_percent: float = Field(5.0, gt=0, le=100, description="Alert when a model's error rate exceeds this.")
    p95_latency_seconds: float = Field(10.0, gt=0, description="Alert when a model's p95 latency exceeds this.")
    unavailable_minutes: int = Field(5, ge=1, description="Alert when a model has been unavailable this long.")
    budget_percent: int = Field(80, ge=1, le=100, description="Warn when a CostBudget has used this share.")
    cost_usd_per_hour: float = Field(
        10.0, gt=0, description="HighAICosts fires when the gateway's spend over the last hour exceeds this rate."
    )
    projection_hours: int = Field(
        24, ge=1, description="Warn when a budget, at the last 6 hours' pace, runs out within this many hours."
    )


class Monitoring(ApiModel):
    """Prometheus Operator integration; skipped (with a condition) when its CRDs are not installed."""

    service_monitor: bool = Field(True, description="Create a ServiceMonitor scraping /metrics.")
    prometheus_rule: bool = Field(True, description="Create a PrometheusRule with the alerts below.")
    scrape_interval: str = Field(
        "30s",
        description="Scrape interval of the ServiceMonitor.",
        max_length=16,
        json_schema_extra={"pattern": "^[0-9]+(ms|s|m|h)$"},
    )
    alerts: Alerts = Field(default_factory=Alerts, description="Alert thresholds.")
    labels: dict[str, str] = Field(
        default_factory=dict,
        max_length=16,
        description="Extra labels on the ServiceMonitor and PrometheusRule, for the Prometheus' selectors "
        "(e.g. release: kube-prometheus-stack); the operator's own labels win.",
        json_schema_extra={"additionalProperties": {"maxLength": SHORT_MAX}},
    )


class Toleration(ApiModel):
    """A pod toleration (core/v1 Toleration)."""

    key: str | None = Field(None, max_length=NAME_MAX + SHORT_MAX, description="Taint key; empty matches all keys.")
    operator: Literal["Exists", "Equal"] | None = Field(None, description="Exists or Equal (default Equal).")
    value: str | None = Field(None, max_length=SHORT_MAX, description="Taint value for Equal.")
    effect: Literal["NoSchedule", "PreferNoSchedule", "NoExecute"] | None = Field(
        None, description="Taint effect to tolerate; empty matches all effects."
    )
    toleration_seconds: int | None = Field(None, description="How long a NoExecute taint is tolerated.")


class ScalingPolicy(ApiModel):
    """One HPA scaling policy (autoscaling/v2 HPAScalingPolicy)."""

    type: Literal["Pods", "Percent"] = Field(..., description="Pods or Percent.")
    value: int = Field(..., gt=0, description="Amount of change the policy permits.")
    period_seconds: int = Field(..., gt=0, le=1800, description="Window the policy holds over.")


class ScalingRules(ApiModel):
    """Scaling behaviour in one direction (autoscaling/v2 HPAScalingRules)."""

    stabilization_window_seconds: int | None = Field(
        None, ge=0, le=3600, description="Past recommendations considered when scaling."
    )
    select_policy: Literal["Max", "Min", "Disabled"] | None = Field(None, description="Which policy wins.")
    policies: list[ScalingPolicy] | None = Field(
        None, max_length=8, description="Scaling policies; default Kubernetes' own."
    )


class ScalingBehavior(ApiModel):
    """HPA behavior: how fast the fleet grows and shrinks (autoscaling/v2)."""

    scale_up: ScalingRules | None = Field(None, description="Rules for scaling up.")
    scale_down: ScalingRules | None = Field(None, description="Rules for scaling down.")


class Autoscaling(ApiModel):
    """CPU-based horizontal autoscaling (autoscaling/v2)."""

    behavior: ScalingBehavior | None = Field(None, description="Scale-up and scale-down behaviour of the HPA.")

    enabled: bool = Field(True, description="Create an HPA; when false the Deployment runs replicas.min pods.")
    target_cpu_utilization_percentage: int = Field(
        70,
        alias="targetCPUUtilizationPercentage",
        ge=1,
        le=100,
        description="Average CPU utilisation (of requests) the HPA aims for.",
    )


class Placement(ApiModel):
    """Where and how the gateway pods are scheduled, passed through to the pod template as is."""

    node_selector: dict[str, str] = Field(
        default_factory=dict,
        max_length=32,
        description="Node labels the pods must run on.",
        json_schema_extra={"additionalProperties": {"maxLength": SHORT_MAX}},
    )
    tolerations: list[Toleration] = Field(default_factory=list, max_length=32, description="Pod tolerations.")
    affinity: dict[str, Any] | None = Field(
        None, description="Pod affinity (core/v1 Affinity), validated by the API server on the Deployment."
    )
    topology_spread_constraints: list[dict[str, Any]] | None = Field(
        None,
        max_length=8,
        description="Pod topology spread constraints (core/v1); default: spread across nodes (hostname).",
    )
    pod_annotations: dict[str, str] = Field(
        default_factory=dict,
        max_length=64,
        description="Extra annotations on the gateway pods.",
        json_schema_extra={"additionalProperties": {"maxLength": 4096}},
    )
    pod_labels: dict[str, str] = Field(
        default_factory=dict,
        max_length=32,
        description="Extra labels on the gateway pods (the operator's own labels win).",
        json_schema_extra={"additionalProperties": {"maxLength": SHORT_MAX}},
    )
    image_pull_secrets: list[str] = Field(
        default_factory=list,
        max_length=8,
        description="Names of Secrets (same namespace) used to pull the image.",
        json_schema_extra={"items": {"maxLength": NAME_MAX}},
    )
    priority_class_name: str | None = Field(None, max_length=NAME_MAX, description="PriorityClass of the pods.")
    service_account_annotations: dict[str, str] = Field(
        default_factory=dict,
        max_length=32,
        description="Annotations on the gateway's ServiceAccount (e.g. workload identity).",
        json_schema_extra={"additionalProperties": {"maxLength": 4096}},
    )


class AIGatewaySpec(ApiModel):
    """Desired state of a gateway fleet."""

    replicas: Replicas = Field(default_factory=Replicas, description="Fleet size bounds (min 5, max 50 by default).")
    autoscaling: Autoscaling = Field(default_factory=Autoscaling, description="Horizontal autoscaling.")
    image: str = Field(DEFAULT_IMAGE, min_length=1, max_length=512, description="Gateway container image.")
    image_pull_policy: Literal["Always", "IfNotPresent", "Never"] = Field(
        "IfNotPresent", description="When the kubelet pulls the image."
    )
    resources: Resources = Field(default_factory=Resources, description="Container resources.")
    service: ServiceSpec = Field(default_factory=ServiceSpec, description="Service type and port.")
    model_selector: LabelSelector = Field(
        default_factory=LabelSelector,
        description="AIModels (in this namespace) this gateway serves; default all.",
    )
    routing: Routing = Field(default_factory=Routing, description="Routing policies and defaults.")
    rollout: Rollout = Field(default_factory=Rollout, description="Rolling-update settings.")
    auth: Auth = Field(default_factory=Auth, description="Client authentication and admin token.")
    redis: Backing | None = Field(
        None,
        description="Redis for state shared across pods (budgets, limits, cache): config `state.redis`, URL "
        "from env AIMM_REDIS_URL. Without it each pod keeps its own counters, so budgets count per pod.",
    )
    database: Backing | None = Field(
        None,
        description="PostgreSQL usage store: config `store.postgres`, DSN from env AIMM_DATABASE_URL; the "
        "pods' `db-upgrade` init container applies schema migrations. Without it no usage history is kept.",
    )
    server: Server = Field(default_factory=Server, description="Gateway process settings.")
    monitoring: Monitoring = Field(default_factory=Monitoring, description="ServiceMonitor and PrometheusRule.")
    placement: Placement = Field(default_factory=Placement, description="Scheduling and metadata of the pods.")


class AIGatewayStatus(StatusBase):
    """Observed state of the gateway fleet."""

    conditions: list[Condition] = conditions_field(
        "Ready, Progressing, Degraded, Reconciling, Stalled, ResolvedRefs, Monitoring"
    )
    replicas: int | None = Field(None, ge=0, description="Gateway pods that exist.")
    ready_replicas: int | None = Field(None, ge=0, description="Gateway pods that are ready.")
    updated_replicas: int | None = Field(None, ge=0, description="Pods running the current pod template.")
    config_replicas: int | None = Field(
        None, ge=0, description="Pods that reported serving the current config (configHash)."
    )
    endpoint: str | None = Field(None, description="URL clients use to reach the gateway.")
    config_hash: str | None = Field(None, description="SHA-256 of the config.yaml the operator wrote.")
    models: int | None = Field(None, ge=0, description="AIModels in the compiled config.")
    routes: int | None = Field(None, ge=0, description="Routes in the compiled config.")
    budgets: int | None = Field(None, ge=0, description="CostBudgets in the compiled config.")


class AIGatewayResource(ApiModel):
    """A fleet of AI gateway pods configured from the AIModels, RoutingPolicies and CostBudgets it selects."""

    spec: AIGatewaySpec = Field(default_factory=AIGatewaySpec, description="Desired state of the gateway fleet.")
    status: AIGatewayStatus | None = Field(None, description="Observed state, written by the operator.")
