"""The Azure OpenAI mock's wire format, checked against the official openai SDK's types."""

from __future__ import annotations

from typing import Any

import pytest
from openai.types.chat import ChatCompletion, ChatCompletionChunk

from aimm_gateway.mock import azure_wire
from aimm_gateway.mock.engine import MockValidationError, generate


def body(text: str = "Hello Azure", **extra: Any) -> dict[str, Any]:
    return azure_wire.with_deployment({"messages": [{"role": "user", "content": text}], **extra}, "gpt-4o")


def rejected(headers: dict[str, str], query: dict[str, str]) -> MockValidationError:
    with pytest.raises(MockValidationError) as info:
        azure_wire.check_request(headers, query)
    return info.value


def test_api_version_is_required_before_anything_else() -> None:
    err = rejected({}, {})
    assert err.status == 400
    assert err.body["error"]["code"] == "MissingApiVersionParameter"
    assert "api-version" in err.body["error"]["message"]


def test_unknown_api_version_is_not_found() -> None:
    err = rejected({"api-key": "k"}, {"api-version": "latest"})
    assert err.status == 404


def test_credentials_are_required() -> None:
    err = rejected({}, {"api-version": "2024-10-21"})
    assert err.status == 401
    assert set(err.body["error"]) == {"code", "message"}  # Azure's own error shape
    assert rejected({"authorization": "Bearer "}, {"api-version": "2024-10-21"}).status == 401


@pytest.mark.parametrize("headers", [{"api-key": "k"}, {"authorization": "Bearer entra-token"}])
def test_api_key_or_bearer_token_is_accepted(headers: dict[str, str]) -> None:
    azure_wire.check_request(headers, {"api-version": "2025-01-01-preview"})


def test_deployment_names_the_model_whatever_the_body_says() -> None:
    assert azure_wire.with_deployment({"model": "other", "messages": []}, "dep")["model"] == "dep"
    assert azure_wire.with_deployment([1], "dep") == [1]  # not an object: left for validation to refuse


def test_prompt_filter_marker_is_refused_like_azure() -> None:
    with pytest.raises(MockValidationError) as info:
        azure_wire.parse_request(body(f"tell me {azure_wire.PROMPT_FILTER_MARKER}"))
    err = info.value.body["error"]
    assert info.value.status == 400
    assert err["code"] == "content_filter"
    assert "content management policy" in err["message"]
    assert err["innererror"]["content_filter_result"]["violence"]["filtered"] is True


def test_completion_carries_filter_results_and_validates() -> None:
    b = body()
    raw = azure_wire.render_completion(b, generate(azure_wire.parse_request(b)))
    completion = ChatCompletion.model_validate(raw)
    assert completion.model == "gpt-4o"
    assert raw["prompt_filter_results"][0]["content_filter_results"]["hate"] == {"filtered": False, "severity": "safe"}
    assert raw["choices"][0]["content_filter_results"]["violence"]["filtered"] is False
    assert completion.choices[0].finish_reason == "stop"


def test_output_filter_marker_ends_with_content_filter() -> None:
    b = body(f"story {azure_wire.OUTPUT_FILTER_MARKER}")
    raw = azure_wire.render_completion(b, generate(azure_wire.parse_request(b)))
    choice = raw["choices"][0]
    assert choice["finish_reason"] == "content_filter"
    assert choice["content_filter_results"]["violence"] == {"filtered": True, "severity": "medium"}


def test_stream_opens_with_prompt_filter_chunk_then_openai_chunks() -> None:
    b = body(stream=True, stream_options={"include_usage": True})
    chunks = list(azure_wire.render_stream(b, generate(azure_wire.parse_request(b)), 4))
    first = chunks[0]
    assert first["choices"] == [] and "prompt_filter_results" in first and "usage" not in first
    # Azure's prelude chunk has object "": real Azure's too; the SDK builds chunks laxly and copes.
    parsed = [ChatCompletionChunk.model_validate(c) for c in chunks[1:]]
    text = "".join(c.choices[0].delta.content or "" for c in parsed if c.choices)
    assert text.startswith("Mock reply from gpt-4o")
    annotated = [c for c in chunks[1:] if c["choices"] and c["choices"][0]["delta"].get("content")]
    assert annotated and all(c["choices"][0]["content_filter_results"]["hate"]["filtered"] is False for c in annotated)
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["total_tokens"] > 0


def test_fault_bodies_use_azures_error_shape() -> None:
    assert azure_wire.fault_error_body(429)["error"]["code"] == "429"
    assert set(azure_wire.fault_error_body(418)["error"]) == {"code", "message"}
