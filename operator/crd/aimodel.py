"""AIModel: one upstream model a gateway can route to (provider, endpoint, key, price, limits)."""

from __future__ import annotations

from typing import Literal

from pydantic import ConfigDict, Field

from aimm_gateway.presets import PRESETS, PROVIDER_NAMES
from aimm_operator.crd.common import (
    NAME_MAX,
    ApiModel,
    CircuitBreaker,
    Condition,
    SecretKeyRef,
    StatusBase,
    Timeouts,
    cel,
    conditions_field,
)

MAX_HEADERS = 16
MAX_HEADER_VALUE = 1024
CAPABILITIES = ("chat", "streaming", "tools", "vision", "json", "embeddings")
Capability = Literal["chat", "streaming", "tools", "vision", "json", "embeddings"]
DEFAULT_CAPABILITIES: list[Capability] = ["chat", "json", "streaming", "tools"]
# Providers whose preset has no default base URL (mock is served in-process and needs none).
PROVIDERS_NEEDING_ENDPOINT = tuple(
    name for name, preset in PRESETS.items() if preset.base_url is None and name != "mock"
)


def _endpoint_rule() -> str:
    names = ", ".join(f"'{p}'" for p in PROVIDERS_NEEDING_ENDPOINT)
    return f"!(self.provider in [{names}]) || has(self.endpoint)"


class Pricing(ApiModel):
    """USD per 1,000 tokens (used for cost accounting, budgets and cost-aware routing)."""

    input_per1k: float = Field(0.0, ge=0, alias="inputPer1k", description="USD per 1k input (prompt) tokens.")
    output_per1k: float = Field(0.0, ge=0, alias="outputPer1k", description="USD per 1k output tokens.")
    cached_input_per1k: float | None = Field(
        None,
        ge=0,
        alias="cachedInputPer1k",
        description="USD per 1k cached input tokens; default the input price.",
    )


class RateLimits(ApiModel):
    """Upstream rate limits for this model (enforced by the gateway's rate-limit policy)."""

    requests_per_minute: int | None = Field(None, ge=1, description="Requests per minute sent to the upstream.")
    tokens_per_minute: int | None = Field(None, ge=1, description="Tokens per minute sent to the upstream.")


class MockBehaviour(ApiModel):
    """Behaviour of a `provider: mock` model, served inside the gateway (for tests and demos)."""

    latency_ms: float = Field(0.0, ge=0, description="Added latency per response, in milliseconds.")
    stream_chunks: int = Field(8, ge=1, le=1000, description="Chunks a streamed response is split into.")
    chunk_interval_ms: float = Field(0.0, ge=0, description="Delay between streamed chunks, in milliseconds.")


class AIModelSpec(ApiModel):
    """Desired state of an AIModel. The object's name is the model name clients ask for."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                cel(
                    _endpoint_rule(),
                    f"endpoint is required for provider(s) {', '.join(PROVIDERS_NEEDING_ENDPOINT)}",
                    fieldPath=".endpoint",
                    reason="FieldValueRequired",
                ),
                cel(
                    "self.maxTokens <= self.contextWindow",
                    "maxTokens must not exceed contextWindow",
                    fieldPath=".maxTokens",
                ),
            ]
        }
    )

    provider: str = Field(
        ...,
        description="Provider preset: wire format, default endpoint and authentication style.",
        json_schema_extra={"enum": list(PROVIDER_NAMES)},
    )
    model: str = Field(..., min_length=1, max_length=NAME_MAX, description="Upstream model id, e.g. gpt-4o-mini.")
    endpoint: str | None = Field(
        None,
        max_length=2048,
        description="Upstream base URL; defaults to the provider preset's (required for openai_compatible).",
        json_schema_extra={
            "x-kubernetes-validations": [cel("self.matches('^https?://')", "endpoint must be an http(s) URL")]
        },
    )
    api_key_secret_ref: SecretKeyRef | None = Field(
        None,
        description="Secret key holding the upstream API key; mounted into the gateway as an env variable.",
    )
    pricing: Pricing = Field(default_factory=Pricing, description="Token prices in USD per 1,000 tokens.")
    context_window: int = Field(128_000, gt=0, description="Largest prompt + output, in tokens.")
    max_tokens: int = Field(4096, gt=0, description="Largest output, in tokens.")
    capabilities: list[Capability] = Field(
        default_factory=lambda: list(DEFAULT_CAPABILITIES),
        max_length=len(CAPABILITIES),
        description="What the model can do; requests needing a missing capability are not routed here.",
        json_schema_extra={"x-kubernetes-list-type": "set"},
    )
    quality: float = Field(0.5, ge=0, le=1, description="Relative answer quality (0..1), used by intelligent routing.")
    weight: float = Field(1.0, ge=0, description="Share of traffic under weighted routing when no route overrides it.")
    priority: int = Field(0, description="Lower is preferred (fallback order and priority routing).")
    enabled: bool = Field(True, description="A disabled model stays in the config but receives no traffic.")
    circuit_breaker: CircuitBreaker | None = Field(
        None, description="Circuit-breaker override for this model; default the route's or gateway's."
    )
    timeouts: Timeouts | None = Field(None, description="Timeout overrides for this model.")
    rate_limits: RateLimits | None = Field(None, description="Upstream rate limits for this model.")
    headers: dict[str, str] = Field(
        default_factory=dict,
        max_length=MAX_HEADERS,
        description=f"Extra non-secret HTTP headers sent to the upstream (at most {MAX_HEADERS}, "
        f"values up to {MAX_HEADER_VALUE} characters: the size of every model in a config stays bounded).",
        json_schema_extra={"additionalProperties": {"maxLength": MAX_HEADER_VALUE}},
    )
    mock: MockBehaviour | None = Field(None, description="Behaviour when provider is mock.")


class AIModelStatus(StatusBase):
    """Observed state of an AIModel: acceptance into gateway config and live traffic statistics."""

    conditions: list[Condition] = conditions_field("Ready, Available, Reconciling, Stalled")
    gateways: list[str] = Field(
        default_factory=list, max_length=256, description="AIGateways whose config includes this model."
    )
    circuit_state: Literal["closed", "open", "half_open", "unknown"] | None = Field(
        None, description="Worst circuit-breaker state across gateway pods."
    )
    requests_per_minute: float | None = Field(None, ge=0, description="Requests per minute, summed over pods.")
    requests_total: int | None = Field(None, ge=0, description="Requests since the gateway pods started.")
    errors_total: int | None = Field(None, ge=0, description="Failed requests since the gateway pods started.")
    error_rate: str | None = Field(None, description="Share of failed requests over the last minute, e.g. 1.25%.")
    p95_latency_ms: float | None = Field(None, ge=0, description="Highest p95 latency across pods, milliseconds.")
    p95_latency: str | None = Field(None, description="p95 latency for display, e.g. 850ms.")
    cost_this_period: str | None = Field(
        None, description="USD spent on this model since the gateway pods' counters started (decimal string)."
    )
    last_error: str | None = Field(None, max_length=1024, description="The most recent upstream error, if any.")
    last_updated: str | None = Field(
        None, description="When the statistics were last polled.", json_schema_extra={"format": "date-time"}
    )


class AIModelResource(ApiModel):
    """An upstream AI model that AIGateways route to. Its name is the client-facing model name."""

    spec: AIModelSpec = Field(..., description="Desired state of the model.")
    status: AIModelStatus | None = Field(None, description="Observed state, written by the operator.")
