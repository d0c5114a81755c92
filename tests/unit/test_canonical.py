from __future__ import annotations

from decimal import Decimal

import pytest

from aimm_gateway.canonical import Usage, validate_chat, validate_embeddings
from aimm_gateway.compare import agreement_score, compare
from aimm_gateway.config import Pricing
from aimm_gateway.cost import request_cost
from aimm_gateway.errors import InvalidRequest


@pytest.mark.parametrize(
    ("body", "where"),
    [
        ({"messages": []}, "messages"),
        ({"messages": [{"role": "bogus", "content": "x"}]}, "messages[0].role"),
        (
            {"messages": [{"role": "user", "content": [{"type": "image_url"}]}]},
            "messages[0].content[0].image_url",
        ),
        ({"messages": [{"role": "user", "content": [{"type": "text"}]}]}, "messages[0].content[0].text"),
        ({"messages": [{"role": "tool", "content": "x"}]}, "tool_call_id"),
        ({"messages": [{"role": "user", "content": "x"}], "n": 0}, "n"),
        (
            {"messages": [{"role": "user", "content": "x"}], "stream_options": {"include_usage": True}},
            "stream_options",
        ),
        (
            {"messages": [{"role": "user", "content": "x"}], "tool_choice": {"type": "function"}},
            "tool_choice.function",
        ),
        (
            {
                "messages": [{"role": "user", "content": "x"}],
                "tools": [{"type": "function", "function": {"name": ""}}],
            },
            "tools[0].function.name",
        ),
    ],
)
def test_chat_validation_names_the_field(body: dict[str, object], where: str) -> None:
    with pytest.raises(InvalidRequest) as exc:
        validate_chat(body)
    assert where in exc.value.message
    assert exc.value.status == 400


def test_unknown_fields_are_kept_and_capabilities_derived() -> None:
    req = validate_chat(
        {
            "model": "x",
            "messages": [
                {
                    "role": "user",
                    "content": [
                        {"type": "text", "text": "hi"},
                        {"type": "image_url", "image_url": {"url": "https://x/y.png"}},
                    ],
                },
                {
                    "role": "user",
                    "content": [{"type": "input_audio", "input_audio": {"data": "", "format": "wav"}}],
                },
            ],
            "tools": [{"type": "function", "function": {"name": "f"}}],
            "response_format": {"type": "json_object"},
            "logit_bias": {"1": 2},
        }
    )
    assert req.model_extra == {"logit_bias": {"1": 2}}
    assert req.required_capabilities() == {"vision", "tools", "json"}
    assert req.messages[0].text() == "hi"


def test_embedding_validation() -> None:
    assert validate_embeddings({"model": "e", "input": ["a", "b"]}).input == ["a", "b"]
    with pytest.raises(InvalidRequest, match="input"):
        validate_embeddings({"model": "e", "input": []})


def test_cost_is_exact_decimal() -> None:
    pricing = Pricing(
        input_per_1k=Decimal("0.003"), output_per_1k=Decimal("0.015"), cached_input_per_1k=Decimal("0.0003")
    )
    cost = request_cost(Usage(prompt_tokens=1000, completion_tokens=333, cached_tokens=400), pricing)
    assert cost == Decimal("0.0018") + Decimal("0.00012") + Decimal("0.004995")
    assert request_cost(Usage(), pricing) == 0


PRICES = [
    "0",
    "0.000",
    "1",
    "0.001",
    "0.0015",
    "2.5",
    "0.00000001",
    "15",
    "0.10",
    "3E+2",
    "1.23456789012345678901234567",
]


@pytest.mark.parametrize("cached_price", [None, "0.0003", "0.00000"])
def test_cost_without_cached_tokens_has_the_general_formulas_digits(cached_price: str | None) -> None:
    # The usual answer (no cached tokens) skips the cached term; the result must keep the same
    # value *and* digits (its str goes into the access log) as the whole formula, whatever the prices.
    def general(u: Usage, p: Pricing) -> Decimal:
        cached = min(u.cached_tokens, u.prompt_tokens)
        cp = p.cached_input_per_1k if p.cached_input_per_1k is not None else p.input_per_1k
        return (
            (u.prompt_tokens - cached) * p.input_per_1k + cached * cp + u.completion_tokens * p.output_per_1k
        ) / 1000

    cached_per_1k = None if cached_price is None else Decimal(cached_price)
    for inp in PRICES:
        for out in PRICES:
            pricing = Pricing(input_per_1k=Decimal(inp), output_per_1k=Decimal(out), cached_input_per_1k=cached_per_1k)
            for usage in (Usage(), Usage(7, 12), Usage(10**15, 1), Usage(0, 4096), Usage(30, 6, cached_tokens=40)):
                assert request_cost(usage, pricing).as_tuple() == general(usage, pricing).as_tuple()


def test_usage_round_trip_openai_shape() -> None:
    usage = Usage.from_openai(
        {"prompt_tokens": 5, "completion_tokens": 7, "prompt_tokens_details": {"cached_tokens": 2}}
    )
    assert usage.to_openai()["total_tokens"] == 12
    assert usage.to_openai()["prompt_tokens_details"]["cached_tokens"] == 2


def test_agreement_score_and_compare() -> None:
    assert agreement_score(["the sky is blue", "the sky is blue"]) == 1.0
    assert agreement_score(["alpha beta", "gamma delta"]) == 0.0
    assert agreement_score(["only one"]) is None
    results = [
        {"model": "a", "text": "x y", "latency_ms": 5.0, "usage": {"total_cost": 0.2, "total_tokens": 4}},
        {"model": "b", "text": "x z", "latency_ms": 3.0, "usage": {"total_cost": 0.1, "total_tokens": 5}},
        {"model": "c", "error": {"message": "boom"}},
    ]
    summary = compare(results)
    assert summary["fastest_model"] == "b" and summary["cheapest_model"] == "b"
    assert summary["failed"] == 1 and summary["agreement_score"] == pytest.approx(1 / 3, abs=1e-4)


def test_upstream_retry_after_prefers_milliseconds() -> None:
    from aimm_gateway.providers.errors import upstream_error

    assert upstream_error("p", 429, {"Retry-After-Ms": "250", "retry-after": "1"}, b"{}").retry_after_s == 0.25
    assert upstream_error("p", 429, {"retry-after": "3"}, b"{}").retry_after_s == 3.0
    assert upstream_error("p", 429, {"retry-after": "soon"}, b"{}").retry_after_s is None
    assert upstream_error("p", 429, {}, b'{"error": {"message": "slow down"}}').message.endswith("slow down")
