"""RoutingPolicy: client-facing route names mapped onto AIModels, and how to choose among them."""

from __future__ import annotations

from typing import Literal

from pydantic import ConfigDict, Field

from aimm_operator.crd.common import (
    NAME_MAX,
    SHORT_MAX,
    ApiModel,
    CircuitBreaker,
    Condition,
    Retries,
    StatusBase,
    Timeouts,
    cel,
    conditions_field,
)

Algorithm = Literal["round_robin", "weighted", "least_connections", "response_time", "intelligent", "adaptive"]
MAX_ROUTES = 64
MAX_TARGETS = 32
MAX_FALLBACKS = 16


class RouteTarget(ApiModel):
    """An AIModel a route sends traffic to."""

    model: str = Field(..., min_length=1, max_length=NAME_MAX, description="Name of an AIModel in this namespace.")
    weight: float = Field(1.0, description="Relative share under weighted routing; must be >= 0.")
    priority: int = Field(0, description="Lower is preferred.")


class Route(ApiModel):
    """A client-facing model name (e.g. `smart`) and the AIModels behind it."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                cel(
                    "self.targets.all(t, t.weight >= 0.0)",
                    "target weights must be >= 0",
                    fieldPath=".targets",
                ),
                cel(
                    "self.targets.exists(t, t.weight > 0.0)",
                    "target weights must not all be zero",
                    fieldPath=".targets",
                ),
                cel(
                    "self.targets.all(t, self.targets.exists_one(u, u.model == t.model))",
                    "target models must be unique within a route",
                    fieldPath=".targets",
                ),
            ]
        }
    )

    name: str = Field(
        ...,
        min_length=1,
        max_length=SHORT_MAX,
        description="Name clients put in the `model` field of a request.",
        json_schema_extra={"pattern": "^[A-Za-z0-9][A-Za-z0-9._:/-]*$"},
    )
    targets: list[RouteTarget] = Field(
        ..., min_length=1, max_length=MAX_TARGETS, description="AIModels this route sends traffic to."
    )
    algorithm: Algorithm | None = Field(None, description="Algorithm for this route; default the policy's.")
    fallbacks: list[str] | None = Field(
        None,
        max_length=MAX_FALLBACKS,
        description="AIModels tried in order after the targets; default the policy's fallback chain.",
        json_schema_extra={"items": {"maxLength": NAME_MAX}},
    )


class IntelligentFactors(ApiModel):
    """Weights of the scores combined by the intelligent algorithm."""

    cost: float = Field(0.3, ge=0, description="Weight of cheapness.")
    performance: float = Field(0.4, ge=0, description="Weight of low latency.")
    quality: float = Field(0.3, ge=0, description="Weight of the model's quality rating.")
    availability: float = Field(0.0, ge=0, description="Weight of recent success rate.")


class Hedging(ApiModel):
    """Send a duplicate request to another target when the first one is slow; first answer wins."""

    enabled: bool = Field(False, description="Turn hedged requests on.")
    delay_seconds: float | None = Field(None, gt=0, description="Fixed hedge delay; default the route's p95.")
    max_hedges: int = Field(1, ge=1, le=3, description="Most extra requests per call.")


class RoutingPolicySpec(ApiModel):
    """Desired routing: routes, the selection algorithm and resilience settings."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                cel(
                    "self.routes.all(r, self.routes.exists_one(s, s.name == r.name))",
                    "route names must be unique",
                    fieldPath=".routes",
                ),
            ]
        }
    )

    routes: list[Route] = Field(
        ..., min_length=1, max_length=MAX_ROUTES, description="Client-facing routes defined by this policy."
    )
    algorithm: Algorithm = Field("round_robin", description="How a target is chosen among a route's targets.")
    intelligent_factors: IntelligentFactors = Field(
        default_factory=IntelligentFactors, description="Score weights for the intelligent algorithm."
    )
    exploration: float = Field(0.1, ge=0, le=1, description="Share of traffic the adaptive algorithm explores.")
    fallback: list[str] = Field(
        default_factory=list,
        max_length=MAX_FALLBACKS,
        description="Fallback chain: AIModels tried in order after a route's targets fail.",
        json_schema_extra={"items": {"maxLength": NAME_MAX}},
    )
    retries: Retries = Field(default_factory=Retries, description="Retry settings for these routes.")
    circuit_breaker: CircuitBreaker = Field(
        default_factory=CircuitBreaker, description="Circuit breaker for the targets of these routes."
    )
    timeouts: Timeouts | None = Field(None, description="Timeout overrides for these routes.")
    hedging: Hedging = Field(default_factory=Hedging, description="Hedged requests for slow targets.")
    queue_timeout_seconds: float = Field(
        0.0, ge=0, description="How long a request waits for a target when every circuit is open."
    )


class RoutingPolicyStatus(StatusBase):
    """Observed state of a RoutingPolicy."""

    conditions: list[Condition] = conditions_field("Ready, ResolvedRefs, Reconciling, Stalled")
    routes: int | None = Field(None, ge=0, description="Routes defined by this policy.")
    targets: int | None = Field(None, ge=0, description="Distinct AIModels the routes reference.")
    gateways: list[str] = Field(
        default_factory=list, max_length=256, description="AIGateways whose config includes these routes."
    )
    served_routes: list[str] = Field(
        default_factory=list,
        max_length=MAX_ROUTES,
        description="Routes this policy owns in some AIGateway. A route keeps its owner: a policy that names "
        "it later gets RouteConflict until the owner lets it go.",
    )


class RoutingPolicyResource(ApiModel):
    """Routes (client-facing names) onto AIModels with an algorithm, fallbacks, retries and breakers."""

    spec: RoutingPolicySpec = Field(..., description="Desired routing.")
    status: RoutingPolicyStatus | None = Field(None, description="Observed state, written by the operator.")
