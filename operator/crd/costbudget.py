"""CostBudget: a spending limit for a gateway, a set of models, or some API keys, per period."""

from __future__ import annotations

from typing import Literal

from pydantic import ConfigDict, Field

from aimm_operator.crd.common import (
    NAME_MAX,
    SHORT_MAX,
    ApiModel,
    Condition,
    LabelSelector,
    StatusBase,
    cel,
    conditions_field,
)

BudgetState = Literal["OK", "Warning", "Exceeded"]


class BudgetScope(ApiModel):
    """What the budget counts. Unset parts do not narrow it: an empty scope is every request."""

    gateway: str | None = Field(
        None,
        max_length=NAME_MAX,
        description="Only this AIGateway (by name); default every gateway in the namespace.",
    )
    model_selector: LabelSelector | None = Field(
        None, description="Only AIModels with these labels; default every model."
    )
    api_keys: list[str] = Field(
        default_factory=list,
        max_length=64,
        description="Only requests made with these API key names (teams or apps); default every key.",
        json_schema_extra={"x-kubernetes-list-type": "set", "items": {"maxLength": SHORT_MAX}},
    )
    teams: list[str] = Field(
        default_factory=list,
        max_length=64,
        description="Only requests by callers of these teams (the team of an API key, or the JWT team claim); "
        "default every team.",
        json_schema_extra={"x-kubernetes-list-type": "set", "items": {"maxLength": SHORT_MAX}},
    )


class CostBudgetSpec(ApiModel):
    """Desired budget: a USD limit per period, alert thresholds, and what to do when it runs out."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                cel(
                    "self.action != 'downgrade' || has(self.downgradeTo)",
                    "downgradeTo is required when action is downgrade",
                    fieldPath=".downgradeTo",
                    reason="FieldValueRequired",
                ),
            ]
        }
    )

    scope: BudgetScope = Field(default_factory=BudgetScope, description="What the budget counts.")
    limit_usd: float = Field(
        ...,
        alias="limitUSD",
        description="Spending limit in USD per period; must be greater than 0.",
        json_schema_extra={"x-kubernetes-validations": [cel("self > 0.0", "limitUSD must be greater than 0")]},
    )
    period: Literal["daily", "weekly", "monthly"] = Field(
        "monthly", description="Budget period; weeks start on Monday."
    )
    time_zone: str = Field(
        "UTC", max_length=64, description="IANA time zone in which periods start, e.g. Europe/Berlin."
    )
    alert_thresholds: list[int] = Field(
        default_factory=lambda: [50, 80, 100],
        max_length=10,
        description="Percentages of the limit at which an alert (Event) fires; ascending, each at most 100.",
        json_schema_extra={
            "x-kubernetes-list-type": "set",
            "x-kubernetes-validations": [
                cel("self.all(t, t > 0 && t <= 100)", "alert thresholds must be between 1 and 100"),
                cel("self.isSorted()", "alert thresholds must be in ascending order"),
            ],
        },
    )
    action: Literal["alert", "block", "downgrade"] = Field(
        "alert",
        description="When exceeded: only alert, block requests (HTTP 429), or downgrade to downgradeTo. "
        "Enforced by the gateways' budget stage; fleet-wide when the AIGateway has spec.redis, else per pod.",
    )
    downgrade_to: str | None = Field(
        None,
        max_length=NAME_MAX,
        description="Route or AIModel requests are sent to once the budget is exceeded.",
    )


class BudgetAction(ApiModel):
    """What the gateways last did at 100% (alert, block or downgrade), and when."""

    action: str = Field(..., max_length=SHORT_MAX, description="alert, block or downgrade.")
    at: str = Field(..., description="When it was first taken.", json_schema_extra={"format": "date-time"})


class CostBudgetStatus(StatusBase):
    """Observed spending in the current period."""

    conditions: list[Condition] = conditions_field("Ready, ResolvedRefs, Reconciling, Stalled")
    gateways: list[str] = Field(
        default_factory=list, max_length=256, description="AIGateways whose config includes this budget."
    )
    cost_this_period: str | None = Field(
        None,
        description="USD spent this period (decimal string), as the gateways count it: from the usage store "
        "or the shared state, the same whichever replica is asked when the AIGateway has spec.redis.",
    )
    remaining: str | None = Field(None, description="USD left this period (decimal string; 0 when exceeded).")
    percent_used: str | None = Field(None, description="Share of the limit spent, e.g. 42.5%.")
    projected_period_cost: str | None = Field(
        None, description="USD projected for the whole period (the gateways' forecast)."
    )
    period_start: str | None = Field(
        None, description="Start of the current period.", json_schema_extra={"format": "date-time"}
    )
    period_ends: str | None = Field(
        None, description="End of the current period.", json_schema_extra={"format": "date-time"}
    )
    state: BudgetState | None = Field(None, description="OK, Warning (a threshold below 100% crossed) or Exceeded.")
    last_action: BudgetAction | None = Field(None, description="The last action the gateways took at 100%.")
    source: str | None = Field(
        None, max_length=64, description="Where the gateways read the spend: store, state or unavailable."
    )
    announced_period_start: str | None = Field(
        None,
        description="The period whose threshold crossings were announced as Events.",
        json_schema_extra={"format": "date-time"},
    )
    announced_thresholds: list[int] = Field(
        default_factory=list,
        max_length=10,
        description="Thresholds already announced in announcedPeriodStart (each Event fires once).",
    )
    last_updated: str | None = Field(
        None, description="When spending was last polled.", json_schema_extra={"format": "date-time"}
    )


class CostBudgetResource(ApiModel):
    """A USD spending limit per period for a gateway, a set of models or some API keys."""

    spec: CostBudgetSpec = Field(..., description="Desired budget.")
    status: CostBudgetStatus | None = Field(None, description="Observed spending, written by the operator.")
