"""Azure OpenAI wire format: the OpenAI wire behind deployment URLs, Azure auth and content filters.

Azure serves the OpenAI chat-completions and embeddings bodies at
``/openai/deployments/{deployment}/chat/completions?api-version=...``: the deployment picks the
model (a ``model`` in the body is ignored). What differs from OpenAI, and is reproduced here:

* every request needs the ``api-version`` query parameter (400 without it, 404 for an unknown
  version) and an ``api-key`` header or an Entra ID bearer token (401 otherwise);
* Azure's own errors are ``{"error": {"code", "message"}}``;
* content filtering: a prompt containing :data:`PROMPT_FILTER_MARKER` is refused with a 400
  ``code: content_filter``; one containing :data:`OUTPUT_FILTER_MARKER` is answered with
  ``finish_reason: content_filter``. Responses carry ``prompt_filter_results`` and per-choice
  ``content_filter_results``; streams open with a chunk that carries only the prompt results.

Body validation and rendering are :mod:`openai_wire`'s, so the two mocks cannot drift apart.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from typing import Any

from . import openai_wire
from .engine import CONTENT_FILTER_MARKER, MockInput, MockOutput, MockValidationError, random_hex
from .wire import bearer_token, for_status, sse_data

__all__ = [
    "OUTPUT_FILTER_MARKER",
    "PROMPT_FILTER_MARKER",
    "AzureDialect",
    "check_request",
    "error_body",
    "fault_error_body",
    "parse_request",
    "prompt_filtered_error",
    "render_completion",
    "render_stream",
    "with_deployment",
]

PROMPT_FILTER_MARKER = CONTENT_FILTER_MARKER  # "[[content_filter]]": the prompt is refused
OUTPUT_FILTER_MARKER = "[[content_filter:output]]"  # the answer is cut by the output filter
_API_VERSION = re.compile(r"\d{4}-\d{2}-\d{2}(-preview)?")
_CATEGORIES = ("hate", "self_harm", "sexual", "violence")
_PROMPT_FILTERED_MESSAGE = (
    "The response was filtered due to the prompt triggering Azure OpenAI's content management policy. "
    "Please modify your prompt and retry. To learn more about our content filtering policies please "
    "read our documentation: https://go.microsoft.com/fwlink/?linkid=2198766"
)


# ---------------------------------------------------------------------------------------------
# Errors and request checks


def error_body(code: str, message: str) -> dict[str, Any]:
    return {"error": {"code": code, "message": message}}


def _error(status: int, code: str, message: str) -> MockValidationError:
    return MockValidationError(status, error_body(code, message))


def check_request(headers: Mapping[str, str], query: Mapping[str, str]) -> None:
    """Azure's checks before the body: api-version first, then credentials."""
    version = query.get("api-version")
    if not version:
        raise _error(
            400,
            "MissingApiVersionParameter",
            "The api-version query parameter (?api-version=) is required for all requests.",
        )
    if not _API_VERSION.fullmatch(version):
        raise _error(404, "404", "Resource not found")
    if not (headers.get("api-key") or bearer_token(headers.get("authorization"))):
        raise _error(
            401,
            "401",
            "Access denied due to invalid subscription key or wrong API endpoint. Make sure to provide "
            "a valid key for an active subscription and use a correct regional API endpoint for your "
            "resource.",
        )


_FAULT_ERRORS: dict[int, tuple[str, str]] = {
    400: ("BadRequest", "Invalid request (injected by mock)."),
    401: ("401", "Access denied due to invalid subscription key or wrong API endpoint."),
    403: ("403", "Access denied."),
    404: ("DeploymentNotFound", "The API deployment for this resource does not exist."),
    429: (
        "429",
        "Requests to the ChatCompletions_Create Operation have exceeded the rate limit of your "
        "current pricing tier. Please retry after 1 second.",
    ),
    500: ("InternalServerError", "The server had an error while processing your request."),
    503: ("ServiceUnavailable", "The service is temporarily unable to process your request."),
}


def fault_error_body(status: int) -> dict[str, Any]:
    """Body of an injected failure, as Azure sends it for that status."""
    return error_body(
        *for_status(_FAULT_ERRORS, status, ("InternalServerError", "Internal error"), ("BadRequest", "Error"))
    )


def prompt_filtered_error() -> MockValidationError:
    body = {
        "error": {
            "message": _PROMPT_FILTERED_MESSAGE,
            "type": None,
            "param": "prompt",
            "code": "content_filter",
            "status": 400,
            "innererror": {
                "code": "ResponsibleAIPolicyViolation",
                "content_filter_result": _filter_results(filtered=True),
            },
        }
    }
    return MockValidationError(400, body)


# ---------------------------------------------------------------------------------------------
# Requests


def with_deployment(body: Any, deployment: str) -> Any:
    """The body as the model sees it: Azure's deployment decides the model, whatever the body says."""
    return {**body, "model": deployment} if isinstance(body, dict) else body


def parse_request(body: Any) -> MockInput:
    """OpenAI's validation, then Azure's prompt filter (marker in any message text)."""
    inp = openai_wire.parse_request(body)
    if any(PROMPT_FILTER_MARKER in m.text for m in inp.messages):
        raise prompt_filtered_error()
    for message in inp.messages:
        if OUTPUT_FILTER_MARKER in message.text:
            # The engine's own marker makes it answer with finish_reason content_filter.
            message.text = message.text.replace(OUTPUT_FILTER_MARKER, CONTENT_FILTER_MARKER)
    return inp


# ---------------------------------------------------------------------------------------------
# Responses


def _filter_results(filtered: bool) -> dict[str, Any]:
    safe = {"filtered": False, "severity": "safe"}
    results: dict[str, Any] = {c: dict(safe) for c in _CATEGORIES}
    if filtered:
        results["violence"] = {"filtered": True, "severity": "medium"}
    return results


def _prompt_filter_results() -> list[dict[str, Any]]:
    results = {**_filter_results(filtered=False), "jailbreak": {"filtered": False, "detected": False}}
    return [{"prompt_index": 0, "content_filter_results": results}]


def render_completion(body: Mapping[str, Any], out: MockOutput) -> dict[str, Any]:
    completion = openai_wire.render_completion(body, out)
    for choice in completion["choices"]:
        choice["content_filter_results"] = _filter_results(choice["finish_reason"] == "content_filter")
    completion["prompt_filter_results"] = _prompt_filter_results()
    return completion


def render_stream(body: Mapping[str, Any], out: MockOutput, chunks: int) -> Iterator[dict[str, Any]]:
    """Azure's chunk sequence: a prompt-filter chunk, then OpenAI's chunks with filter results."""
    yield {
        "choices": [],
        "created": 0,
        "id": "",
        "model": "",
        "object": "",
        "prompt_filter_results": _prompt_filter_results(),
    }
    for chunk in openai_wire.render_stream(body, out, chunks):
        for choice in chunk["choices"]:
            choice["content_filter_results"] = _choice_stream_results(choice)
        yield chunk


def _choice_stream_results(choice: dict[str, Any]) -> dict[str, Any]:
    if choice.get("finish_reason") == "content_filter":
        return _filter_results(filtered=True)
    delta = choice.get("delta") or {}
    # Azure annotates the chunks that carry output; the role and finish chunks get an empty object.
    return _filter_results(filtered=False) if delta.get("content") or delta.get("tool_calls") else {}


def stream_error_chunk() -> dict[str, Any]:
    return error_body("InternalServerError", "The server had an error while processing your request.")


# ---------------------------------------------------------------------------------------------
# HTTP dialect (used by the mock server)


class AzureDialect:
    """What the Azure mock does differently at the HTTP level; see the server's dialects."""

    name = "azure"
    done_frame: bytes | None = b"data: [DONE]\n\n"

    def request_id_headers(self, request_id: str | None = None) -> dict[str, str]:
        rid = request_id or random_hex(32)
        return {"apim-request-id": rid, "x-request-id": rid, "x-ms-region": "East US"}

    def check_request(self, request: Any, require_auth: bool) -> None:
        # Azure has no anonymous mode: api-version and credentials are always checked.
        check_request(request.headers, request.query_params)

    def bad_request(self, message: str) -> MockValidationError:
        return _error(400, "BadRequest", message)

    def invalid_json(self, detail: str) -> MockValidationError:
        return openai_wire.invalid_json_error()

    fault_body = staticmethod(fault_error_body)

    def rate_limit_headers(self, retry_after_ms: int) -> dict[str, str]:
        return {"x-ratelimit-remaining-requests": "0", "x-ratelimit-remaining-tokens": "0"}

    def frame(self, event: dict[str, Any]) -> bytes:
        return sse_data(event)

    def error_frame(self) -> bytes:
        return self.frame(stream_error_chunk())
