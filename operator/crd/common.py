"""Shared pieces of the aimm.io/v1alpha1 API: base model, condition, selectors, secret refs.

Every CRD kind is a pydantic model (one file per kind). `generate.py` turns the models into
structural OpenAPI v3 schemas, so the Python types the operator reads and the schema the API
server enforces come from one source. Field descriptions are mandatory: `kubectl explain`
shows them, and generation fails on a field without one.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

GROUP = "aimm.io"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"

NAME_MAX = 253  # DNS subdomain, the longest Kubernetes object name
SHORT_MAX = 63  # label value / DNS label


def cel(rule: str, message: str, **extra: Any) -> dict[str, Any]:
    """One `x-kubernetes-validations` entry."""
    return {"rule": rule, "message": message, **extra}


class ApiModel(BaseModel):
    """Base of every CRD type: camelCase on the wire, unknown keys ignored (the server prunes them)."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="ignore", frozen=True)


class SecretKeyRef(ApiModel):
    """A key in a Secret in the same namespace. The operator never reads the Secret."""

    name: str = Field(..., min_length=1, max_length=NAME_MAX, description="Name of the Secret (same namespace).")
    key: str = Field(..., min_length=1, max_length=NAME_MAX, description="Key within the Secret's data.")


class LabelSelectorRequirement(ApiModel):
    """A label selector requirement: a key, an operator and values."""

    key: str = Field(..., min_length=1, max_length=NAME_MAX + SHORT_MAX, description="The label key.")
    operator: Literal["In", "NotIn", "Exists", "DoesNotExist"] = Field(
        ..., description="How the key relates to the values: In, NotIn, Exists or DoesNotExist."
    )
    values: list[str] = Field(
        default_factory=list,
        max_length=64,
        description="Values for In and NotIn (non-empty there); empty for Exists and DoesNotExist.",
        json_schema_extra={"items": {"maxLength": SHORT_MAX}},
    )


class LabelSelector(ApiModel):
    """Selects objects by label. An empty selector selects every object in the namespace."""

    match_labels: dict[str, str] = Field(
        default_factory=dict,
        max_length=32,
        description="Labels that must all match exactly (key: value).",
        json_schema_extra={"additionalProperties": {"maxLength": SHORT_MAX}},
    )
    match_expressions: list[LabelSelectorRequirement] = Field(
        default_factory=list, max_length=32, description="Requirements that must all hold."
    )

    def matches(self, labels: dict[str, str]) -> bool:
        for key, value in self.match_labels.items():
            if labels.get(key) != value:
                return False
        for req in self.match_expressions:
            present = req.key in labels
            if req.operator == "In" and (not present or labels[req.key] not in req.values):
                return False
            if req.operator == "NotIn" and present and labels[req.key] in req.values:
                return False
            if req.operator == "Exists" and not present:
                return False
            if req.operator == "DoesNotExist" and present:
                return False
        return True


ConditionStatus = Literal["True", "False", "Unknown"]


class Condition(ApiModel):
    """One aspect of the object's state, following the Kubernetes API conventions (metav1.Condition)."""

    type: str = Field(
        ..., min_length=1, max_length=316, description="Condition type, e.g. Ready, Stalled, Reconciling."
    )
    status: ConditionStatus = Field(..., description="True, False or Unknown.")
    reason: str = Field(
        ..., min_length=1, max_length=1024, description="One-word CamelCase reason for the last transition."
    )
    message: str = Field("", max_length=32768, description="Human-readable details of the last transition.")
    last_transition_time: str = Field(
        ...,
        description="When the status last changed (RFC 3339).",
        json_schema_extra={"format": "date-time"},
    )
    observed_generation: int = Field(0, ge=0, description="The metadata.generation this condition was computed from.")


def conditions_field(kind_types: str) -> Any:
    """The `conditions` list of a status, keyed by type (server-side apply merges by type).

    Each condition is atomic: one writer owns a condition type whole (the operator's reconcile
    its Ready/Reconciling/Stalled, the stats poll its Available), so server-side apply records one
    `k:{"type":...}` entry per condition in managedFields instead of its seven leaves. Those
    entries travel with every row of `kubectl get` (its Table rows carry the object's metadata).
    """
    return Field(
        default_factory=list,
        max_length=16,
        description=f"Current conditions ({kind_types}), keyed by type.",
        json_schema_extra={
            "x-kubernetes-list-type": "map",
            "x-kubernetes-list-map-keys": ["type"],
            "items": {"x-kubernetes-map-type": "atomic"},
        },
    )


class StatusBase(ApiModel):
    """Fields every status has (kstatus: observedGeneration and conditions)."""

    observed_generation: int | None = Field(
        None, ge=0, description="The metadata.generation the operator last reconciled."
    )


class Timeouts(ApiModel):
    """Upstream timeouts in seconds; unset fields keep the gateway defaults."""

    connect_seconds: float | None = Field(None, gt=0, description="TCP/TLS connect timeout.")
    first_byte_seconds: float | None = Field(None, gt=0, description="Time to the first response byte.")
    total_seconds: float | None = Field(None, gt=0, description="Whole non-streaming request.")
    stream_idle_seconds: float | None = Field(None, gt=0, description="Longest silence between two stream chunks.")

    def to_config(self) -> dict[str, float]:
        out = {
            "connect_s": self.connect_seconds,
            "first_byte_s": self.first_byte_seconds,
            "total_s": self.total_seconds,
            "stream_idle_s": self.stream_idle_seconds,
        }
        return {k: v for k, v in out.items() if v is not None}


class CircuitBreaker(ApiModel):
    """When to stop sending traffic to a failing model, and for how long."""

    failure_threshold: int = Field(5, ge=1, le=1000, description="Consecutive failures that open the circuit.")
    failure_rate: float = Field(0.5, gt=0, le=1, description="Failure share over the window that opens the circuit.")
    window_seconds: float = Field(60.0, gt=0, description="Window over which the failure rate is measured.")
    min_requests: int = Field(20, ge=1, description="Requests in the window before the failure rate counts.")
    timeout_seconds: float = Field(60.0, gt=0, description="How long the circuit stays open before probing.")
    half_open_requests: int = Field(1, ge=1, le=100, description="Probe requests admitted while half-open.")
    trip_on429: bool = Field(False, alias="tripOn429", description="Count upstream 429 responses as failures.")

    def to_config(self) -> dict[str, Any]:
        return {
            "failure_threshold": self.failure_threshold,
            "failure_rate": self.failure_rate,
            "window_s": self.window_seconds,
            "min_requests": self.min_requests,
            "timeout_s": self.timeout_seconds,
            "half_open_requests": self.half_open_requests,
            "trip_on_429": self.trip_on429,
        }


class Retries(ApiModel):
    """How often a failed request is retried (across targets) and how fast."""

    attempts: int = Field(3, ge=1, le=10, description="Total attempts per request, across targets.")
    backoff_initial_seconds: float = Field(0.1, ge=0, description="First retry delay.")
    backoff_max_seconds: float = Field(5.0, ge=0, description="Largest retry delay.")
    budget_ratio: float = Field(0.2, ge=0, le=1, description="Retries allowed as a share of requests.")

    def to_config(self) -> dict[str, Any]:
        return {
            "attempts": self.attempts,
            "backoff_initial_s": self.backoff_initial_seconds,
            "backoff_max_s": self.backoff_max_seconds,
            "budget_ratio": self.budget_ratio,
        }
