"""Typed results. Each keeps the raw JSON (`raw`) so fields the gateway adds later stay reachable."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, TypeAlias

from aimm_client.errors import APIError, error_from_body

JSON: TypeAlias = dict[str, Any]


def _f(value: Any) -> float | None:
    return None if value is None else float(value)


@dataclass(frozen=True, slots=True)
class Usage:
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int
    total_cost: float  # USD

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> Usage:
        return cls(
            int(d.get("prompt_tokens", 0)),
            int(d.get("completion_tokens", 0)),
            int(d.get("total_tokens", 0)),
            float(d.get("total_cost", 0.0)),
        )


@dataclass(frozen=True, slots=True)
class QueryResult:
    text: str
    model: str
    provider: str
    usage: Usage
    latency_ms: float
    request_id: str
    finish_reason: str | None
    raw: JSON = field(repr=False, compare=False)

    @classmethod
    def from_json(cls, d: JSON) -> QueryResult:
        return cls(
            d["text"],
            d["model"],
            d["provider"],
            Usage.from_json(d["usage"]),
            float(d["latency_ms"]),
            d["request_id"],
            d.get("finish_reason"),
            d,
        )


@dataclass(frozen=True, slots=True)
class QueryFailure:
    """One model's or one batch item's failure inside a successful call."""

    model: str | None
    error: APIError
    raw: JSON = field(repr=False, compare=False)

    @classmethod
    def from_json(cls, d: JSON, request_id: str | None = None) -> QueryFailure:
        return cls(d.get("model"), error_from_body(d, status=d.get("status"), request_id=request_id), d)


def _result(d: JSON, request_id: str | None) -> QueryResult | QueryFailure:
    return QueryFailure.from_json(d, request_id) if "error" in d else QueryResult.from_json(d)


@dataclass(frozen=True, slots=True)
class Comparison:
    succeeded: int
    failed: int
    agreement_score: float | None
    fastest_model: str | None
    cheapest_model: str | None
    latency_ms: dict[str, float]
    cost_usd: dict[str, float]
    total_tokens: dict[str, int]

    @classmethod
    def from_json(cls, d: JSON) -> Comparison:
        return cls(
            int(d.get("succeeded", 0)),
            int(d.get("failed", 0)),
            _f(d.get("agreement_score")),
            d.get("fastest_model"),
            d.get("cheapest_model"),
            dict(d.get("latency_ms") or {}),
            dict(d.get("cost_usd") or {}),
            dict(d.get("total_tokens") or {}),
        )


@dataclass(frozen=True, slots=True)
class MultipleResult:
    request_id: str
    results: list[QueryResult | QueryFailure]
    comparison: Comparison | None
    raw: JSON = field(repr=False, compare=False)

    @classmethod
    def from_json(cls, d: JSON) -> MultipleResult:
        rid = d.get("request_id", "")
        cmp = d.get("comparison")
        return cls(rid, [_result(r, rid) for r in d["results"]], Comparison.from_json(cmp) if cmp else None, d)


@dataclass(frozen=True, slots=True)
class BatchResult:
    request_id: str
    results: list[QueryResult | QueryFailure]  # in request order
    succeeded: int
    failed: int
    raw: JSON = field(repr=False, compare=False)

    @classmethod
    def from_json(cls, d: JSON) -> BatchResult:
        rid = d.get("request_id", "")
        items = sorted(d["results"], key=lambda r: r.get("index", 0))
        return cls(rid, [_result(r, rid) for r in items], int(d["succeeded"]), int(d["failed"]), d)


@dataclass(frozen=True, slots=True)
class ContentChunk:
    """A piece of the answer's text."""

    text: str
    type: Literal["content"] = "content"


@dataclass(frozen=True, slots=True)
class FinalChunk:
    """The last event of a stream: who answered, usage and cost."""

    model: str
    provider: str
    usage: Usage
    finish_reason: str | None
    latency_ms: float
    request_id: str
    type: Literal["usage"] = "usage"

    @classmethod
    def from_json(cls, d: JSON) -> FinalChunk:
        return cls(
            d["model"],
            d["provider"],
            Usage.from_json(d["usage"]),
            d.get("finish_reason"),
            float(d["latency_ms"]),
            d["request_id"],
        )


StreamChunk: TypeAlias = ContentChunk | FinalChunk


@dataclass(frozen=True, slots=True)
class ModelInfo:
    name: str
    provider: str
    model: str
    enabled: bool
    health: str
    circuit_state: str
    reason: str | None
    input_per_1k: str
    output_per_1k: str
    capabilities: list[str]
    context_window: int | None
    max_tokens: int | None
    weight: float
    raw: JSON = field(repr=False, compare=False)

    @classmethod
    def from_json(cls, d: JSON) -> ModelInfo:
        price = d.get("price") or {}
        return cls(
            d["name"],
            d["provider"],
            d["model"],
            bool(d["enabled"]),
            d["health"],
            d["circuit_state"],
            d.get("reason"),
            str(price.get("input_per_1k", "0")),
            str(price.get("output_per_1k", "0")),
            list(d.get("capabilities") or []),
            d.get("context_window"),
            d.get("max_tokens"),
            float(d.get("weight", 1.0)),
            d,
        )


@dataclass(frozen=True, slots=True)
class RouteInfo:
    name: str
    algorithm: str
    targets: list[str]
    fallbacks: list[str]
    weights: list[float]  # each target's effective weight, in the order of `targets`

    @classmethod
    def from_json(cls, d: JSON) -> RouteInfo:
        weights = [float(w) for w in d.get("weights") or [1.0] * len(d["targets"])]
        return cls(d["name"], d["algorithm"], list(d["targets"]), list(d.get("fallbacks") or []), weights)


@dataclass(frozen=True, slots=True)
class ModelList:
    models: list[ModelInfo]
    routes: list[RouteInfo]

    @classmethod
    def from_json(cls, d: JSON) -> ModelList:
        return cls([ModelInfo.from_json(m) for m in d["models"]], [RouteInfo.from_json(r) for r in d["routes"]])

    def get(self, name: str) -> ModelInfo | None:
        return next((m for m in self.models if m.name == name), None)


@dataclass(frozen=True, slots=True)
class ModelStatus:
    """A model's status from the admin API."""

    name: str
    provider: str
    enabled: bool
    available: bool
    health: str
    circuit_state: str
    source: str
    requests_total: int
    errors_total: int
    weight: float
    raw: JSON = field(repr=False, compare=False)

    @classmethod
    def from_json(cls, d: JSON) -> ModelStatus:
        return cls(
            d["name"],
            d["provider"],
            bool(d["enabled"]),
            bool(d["available"]),
            d["health"],
            d["circuit_state"],
            d.get("source", "config"),
            int(d.get("requests_total", 0)),
            int(d.get("errors_total", 0)),
            float(d.get("weight", 1.0)),
            d,
        )


@dataclass(frozen=True, slots=True)
class Feedback:
    accepted: bool
    model: str
    score: float

    @classmethod
    def from_json(cls, d: JSON) -> Feedback:
        return cls(bool(d["accepted"]), d["model"], float(d["score"]))


@dataclass(frozen=True, slots=True)
class Stats:
    config_hash: str
    models: dict[str, JSON]
    budgets: dict[str, JSON]

    @classmethod
    def from_json(cls, d: JSON) -> Stats:
        return cls(d.get("config_hash", ""), dict(d.get("models") or {}), dict(d.get("budgets") or {}))


@dataclass(frozen=True, slots=True)
class LiveMetrics:
    requests_per_second: float
    error_rate: float
    latency_ms: dict[str, float | None]
    cost_per_hour_usd: str
    models: dict[str, JSON]
    raw: JSON = field(repr=False, compare=False)

    @classmethod
    def from_json(cls, d: JSON) -> LiveMetrics:
        return cls(
            float(d.get("requests_per_second", 0.0)),
            float(d.get("error_rate", 0.0)),
            dict(d.get("latency_ms") or {}),
            str(d.get("cost_per_hour_usd", "0")),
            dict(d.get("models") or {}),
            d,
        )


@dataclass(frozen=True, slots=True)
class FeedEvent:
    """One message of the live feed."""

    channel: str
    data: Any
    raw: JSON = field(repr=False, compare=False)

    @classmethod
    def from_json(cls, d: JSON) -> FeedEvent:
        return cls(str(d.get("channel") or d.get("type") or ""), d.get("data", d), d)
