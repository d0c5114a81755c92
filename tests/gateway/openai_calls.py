"""What the provider HTTP tests do through the official OpenAI SDK, written once."""

from __future__ import annotations

from typing import Any

import openai

from tests.gateway.conftest import API_KEY, RunningGateway, Upstream


def client(gw: RunningGateway) -> Any:
    # Typed as Any: the SDK's request TypedDicts are narrower than the test data, and runtime parsing checks shapes.
    return openai.OpenAI(base_url=gw.v1, api_key=API_KEY, max_retries=0)


def last_request(upstream: Upstream) -> dict[str, Any]:
    data: dict[str, Any] = upstream.stats()["last_request"]
    return data


def user(content: Any) -> dict[str, Any]:
    return {"role": "user", "content": content}


def stream_text(chunks: list[Any]) -> str:
    return "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)


def stream_until_error(api: Any, model: str, prompt: str = "a long question") -> tuple[list[Any], openai.APIError]:
    """A streamed chat expected to fail after it started: the chunks received, and the error."""
    received: list[Any] = []
    try:
        for chunk in api.chat.completions.create(model=model, messages=[user(prompt)], stream=True):
            received.append(chunk)
    except openai.APIError as exc:
        return received, exc
    raise AssertionError(f"the stream ended without an error after {len(received)} chunks")


def rate_limited(api: Any, model: str) -> openai.RateLimitError:
    """The 429 a plain chat gets (the upstream was told to throttle)."""
    try:
        api.chat.completions.create(model=model, messages=[user("hi")])
    except openai.RateLimitError as exc:
        return exc
    raise AssertionError("the chat was not rate limited")


def assert_unit_embeddings(result: Any, count: int, dimensions: int, prompt_tokens: int) -> None:
    """`count` embeddings of `dimensions`, in order, unit vectors (they survive base64 both ways)."""
    assert [d.index for d in result.data] == list(range(count))
    assert all(len(d.embedding) == dimensions for d in result.data)
    assert abs(sum(x * x for x in result.data[0].embedding) - 1) < 1e-3
    assert result.usage.prompt_tokens == prompt_tokens
