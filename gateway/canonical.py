"""The canonical chat model every adapter translates to and from.

The canonical shape is OpenAI's chat-completions schema: it is what most clients speak and what
most providers accept, so the common pass-through path costs one validation and no translation.
`ChatRequest` validates a request (unknown fields are kept and forwarded); responses and stream
events are plain dicts shaped exactly as OpenAI's `chat.completion` / `chat.completion.chunk`.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    ValidationError,
    field_validator,
    model_validator,
)

from aimm_gateway.config import format_loc
from aimm_gateway.errors import InvalidRequest

ChatCompletion = dict[str, Any]
ChatChunk = dict[str, Any]


class _Open(BaseModel):
    """Known fields are validated; unknown ones are kept so they reach OpenAI-compatible upstreams."""

    model_config = ConfigDict(extra="allow")


class ImageURL(_Open):
    url: str
    detail: Literal["auto", "low", "high"] | None = None


class TextPart(_Open):
    type: Literal["text"]
    text: str


class ImagePart(_Open):
    type: Literal["image_url"]
    image_url: ImageURL


class OtherPart(_Open):
    """Audio, file and future part types: passed through to upstreams that know them."""

    type: str


def _part_kind(part: Any) -> str:
    kind = part.get("type") if isinstance(part, dict) else getattr(part, "type", None)
    return f"part:{kind}" if kind in ("text", "image_url") else "part:other"


# Tagged by `type`, so an error names the broken field of the part the client meant.
ContentPart = Annotated[
    Annotated[TextPart, Tag("part:text")]
    | Annotated[ImagePart, Tag("part:image_url")]
    | Annotated[OtherPart, Tag("part:other")],
    Discriminator(_part_kind),
]


class FunctionCall(_Open):
    name: str
    arguments: str


class ToolCall(_Open):
    id: str
    type: Literal["function"] = "function"
    function: FunctionCall


class Message(_Open):
    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[ContentPart] | None = None
    name: str | None = None
    tool_calls: list[ToolCall] | None = None
    tool_call_id: str | None = None

    @model_validator(mode="after")
    def _role_rules(self) -> Message:
        if self.role == "tool" and not self.tool_call_id:
            raise ValueError("tool messages need 'tool_call_id'")
        if self.role != "assistant" and self.content is None:
            raise ValueError(f"{self.role} messages need 'content'")
        if self.role == "assistant" and self.content is None and not self.tool_calls:
            raise ValueError("assistant messages need 'content' or 'tool_calls'")
        return self

    def text(self) -> str:
        """The message's text parts joined; images and other parts are left out."""
        if self.content is None:
            return ""
        if isinstance(self.content, str):
            return self.content
        return "".join(p.text for p in self.content if isinstance(p, TextPart))

    def has_image(self) -> bool:
        return isinstance(self.content, list) and any(isinstance(p, ImagePart) for p in self.content)


class FunctionDef(_Open):
    name: str = Field(..., min_length=1, max_length=64)
    description: str | None = None
    parameters: dict[str, Any] | None = None
    strict: bool | None = None


class Tool(_Open):
    type: Literal["function"]
    function: FunctionDef


class NamedFunction(_Open):
    name: str


class NamedToolChoice(_Open):
    type: Literal["function"]
    function: NamedFunction


ToolChoice = Literal["none", "auto", "required"] | NamedToolChoice


class ResponseFormat(_Open):
    type: Literal["text", "json_object", "json_schema"]
    json_schema: dict[str, Any] | None = None


class StreamOptions(_Open):
    include_usage: bool | None = None


class ChatRequest(_Open):
    model: str | None = None
    messages: list[Message] = Field(..., min_length=1)
    stream: bool | None = False
    stream_options: StreamOptions | None = None
    temperature: float | None = Field(None, ge=0, le=2)
    top_p: float | None = Field(None, ge=0, le=1)
    n: int | None = Field(None, ge=1, le=128)
    max_tokens: int | None = Field(None, ge=1)
    max_completion_tokens: int | None = Field(None, ge=1)
    stop: str | list[str] | None = None
    tools: list[Tool] | None = None
    tool_choice: ToolChoice | None = None
    parallel_tool_calls: bool | None = None
    response_format: ResponseFormat | None = None
    seed: int | None = None
    user: str | None = None
    presence_penalty: float | None = Field(None, ge=-2, le=2)
    frequency_penalty: float | None = Field(None, ge=-2, le=2)

    @model_validator(mode="after")
    def _stream_options_need_stream(self) -> ChatRequest:
        if self.stream_options is not None and not self.stream:
            raise ValueError("stream_options: only allowed when 'stream' is true")
        return self

    @property
    def output_limit(self) -> int | None:
        return self.max_completion_tokens or self.max_tokens

    @property
    def stop_list(self) -> list[str]:
        if self.stop is None:
            return []
        return [self.stop] if isinstance(self.stop, str) else list(self.stop)

    def wants_usage_in_stream(self) -> bool:
        return bool(self.stream_options and self.stream_options.include_usage)

    def required_capabilities(self) -> frozenset[str]:
        tools = bool(self.tools)
        json = self.response_format is not None and self.response_format.type != "text"
        vision = False
        for m in self.messages:  # a loop, not `any(generator)`: most requests have no image to find
            if m.has_image():
                vision = True
                break
        if not (tools or json or vision):
            return _NO_CAPABILITIES  # the usual request: one shared empty set
        return frozenset(c for c, needed in (("tools", tools), ("json", json), ("vision", vision)) if needed)


_NO_CAPABILITIES: frozenset[str] = frozenset()


class EmbeddingRequest(_Open):
    model: str | None = None
    input: str | list[str] | list[int] | list[list[int]]
    encoding_format: Literal["float", "base64"] | None = None
    dimensions: int | None = Field(None, ge=1)
    user: str | None = None

    @field_validator("input")
    @classmethod
    def _not_empty(cls, value: Any) -> Any:
        if isinstance(value, list) and not value:
            raise ValueError("must not be empty")
        return value


def validate_chat(body: Any) -> ChatRequest:
    return _validate(ChatRequest, body)


def validate_embeddings(body: Any) -> EmbeddingRequest:
    return _validate(EmbeddingRequest, body)


def _validate(model: type[Any], body: Any) -> Any:
    if not isinstance(body, dict):
        raise InvalidRequest("request body must be a JSON object")
    try:
        return model.model_validate(body)
    except ValidationError as exc:
        # A union reports one error per branch; the deepest location names the real problem.
        errors = [(tuple(p for p in e["loc"] if not _is_union_tag(p)), e) for e in exc.errors(include_url=False)]
        path, err = max(errors, key=lambda item: len(item[0]))
        loc = format_loc(path)
        msg = err["msg"].removeprefix("Value error, ")
        raise InvalidRequest(f"{loc}: {msg}" if loc else msg, param=loc or None) from None


def _is_union_tag(part: int | str) -> bool:
    return isinstance(part, str) and (
        part in ("str", "list", "NamedToolChoice")
        or "[" in part
        or part.startswith("part:")
        or part.startswith("function-")
    )


@dataclass(slots=True)
class Usage:
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0
    reasoning_tokens: int = 0

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    @classmethod
    def from_openai(cls, usage: dict[str, Any] | None) -> Usage:
        if not usage:
            return cls()
        prompt_details = usage.get("prompt_tokens_details")  # absent from most answers: no lookup in {}
        completion_details = usage.get("completion_tokens_details")
        return cls(  # by position (the fields' order): a keyword call costs more, once per answer
            int(usage.get("prompt_tokens") or 0),
            int(usage.get("completion_tokens") or 0),
            int(prompt_details.get("cached_tokens") or 0) if prompt_details else 0,
            int(completion_details.get("reasoning_tokens") or 0) if completion_details else 0,
        )

    @classmethod
    def of_embeddings(cls, response: dict[str, Any]) -> Usage:
        """An OpenAI-shaped embeddings response's usage: prompt tokens only."""
        return cls(prompt_tokens=int((response.get("usage") or {}).get("prompt_tokens") or 0))

    def to_openai(self) -> dict[str, Any]:
        return {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "total_tokens": self.total_tokens,
            "prompt_tokens_details": {"cached_tokens": self.cached_tokens, "audio_tokens": 0},
            "completion_tokens_details": {
                "reasoning_tokens": self.reasoning_tokens,
                "audio_tokens": 0,
                "accepted_prediction_tokens": 0,
                "rejected_prediction_tokens": 0,
            },
        }


def new_completion_id() -> str:
    return f"chatcmpl-{uuid.uuid4().hex[:24]}"


def now_s() -> int:
    return int(time.time())


def chunk(
    completion_id: str, model: str, created: int, delta: dict[str, Any], finish_reason: str | None = None
) -> ChatChunk:
    """One `chat.completion.chunk` with a single choice."""
    out = _chunk_envelope(completion_id, model, created)
    out["choices"] = [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}]
    return out


def usage_chunk(completion_id: str, model: str, created: int, usage: Usage) -> ChatChunk:
    out = _chunk_envelope(completion_id, model, created)
    out["choices"] = []
    out["usage"] = usage.to_openai()
    return out


def _chunk_envelope(completion_id: str, model: str, created: int) -> ChatChunk:
    return {
        "id": completion_id,
        "object": "chat.completion.chunk",
        "created": created,
        "model": model,
        "system_fingerprint": None,
    }
