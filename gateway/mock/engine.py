"""Provider-neutral deterministic "model" behind the mock upstream providers.

The wire modules (``openai_wire``, ``anthropic_wire``) translate a provider request into a
:class:`MockInput`, call :func:`generate`, and render the :class:`MockOutput` back in the
provider's own format. Everything here is deterministic (same input -> same output) and cheap:
the mocks are used in benchmarks, so the hot path avoids pydantic and heavy allocations.
"""

from __future__ import annotations

import hashlib
import math
import random
import struct
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import orjson

FinishReason = Literal["stop", "length", "tool_calls", "content_filter"]
# "auto" | "none" | "required" | {"name": "<tool name>"}
ToolChoice = str | Mapping[str, str]

CONTENT_FILTER_MARKER = "[[content_filter]]"
ECHO_LIMIT = 120  # characters of the user's text echoed back in replies
CHARS_PER_TOKEN = 4
MESSAGE_OVERHEAD_TOKENS = 4  # role + delimiters per message, like OpenAI's chat accounting
REPLY_PRIMING_TOKENS = 3  # every reply is primed with "<|start|>assistant<|message|>"
TOOL_CALL_OVERHEAD_TOKENS = 3
_MAX_SCHEMA_DEPTH = 8  # guards against recursive $ref schemas


class MockValidationError(Exception):
    """A request rejected by a wire module, already shaped as the provider's error response."""

    def __init__(self, status: int, body: dict[str, Any]) -> None:
        super().__init__(f"{status}: {body}")
        self.status = status
        self.body = body


@dataclass(slots=True)
class MockMessage:
    role: str  # "system" | "user" | "assistant" | "tool"
    text: str
    is_tool_result: bool = False
    tool_name: str | None = None


@dataclass(slots=True)
class MockTool:
    name: str
    parameters: dict[str, Any] = field(default_factory=dict)  # JSON schema of the arguments


@dataclass(slots=True)
class MockInput:
    model: str
    messages: list[MockMessage]
    tools: list[MockTool] = field(default_factory=list)
    tool_choice: ToolChoice = "auto"
    max_tokens: int | None = None
    stop: list[str] = field(default_factory=list)
    n: int = 1
    json_mode: bool = False
    parallel_tool_calls: bool = True
    json_schema: dict[str, Any] | None = None  # structured output: the reply conforms to it


@dataclass(slots=True)
class MockToolCall:
    id: str  # provider-neutral; wire modules add their prefix ("call_", "toolu_")
    name: str
    arguments_json: str
    arguments: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class MockChoice:
    text: str | None
    tool_calls: list[MockToolCall]
    finish_reason: FinishReason
    stop_sequence: str | None = None  # the stop sequence that ended the text, if any


@dataclass(slots=True)
class MockOutput:
    choices: list[MockChoice]
    prompt_tokens: int
    completion_tokens: int

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


def random_hex(length: int = 24) -> str:
    """An id suffix for responses: unique enough and not secret, so the fast PRNG does (no urandom)."""
    return f"{random.getrandbits(length * 4):0{length}x}"


# ---------------------------------------------------------------------------------------------
# Token accounting


def estimate_tokens(text: str) -> int:
    """~4 characters per token, at least 1: cheap, deterministic, monotonic in length."""
    return max(1, (len(text) + CHARS_PER_TOKEN - 1) // CHARS_PER_TOKEN)


def count_prompt_tokens(inp: MockInput) -> int:
    total = REPLY_PRIMING_TOKENS
    for msg in inp.messages:
        total += MESSAGE_OVERHEAD_TOKENS + estimate_tokens(msg.text)
    for tool in inp.tools:
        total += estimate_tokens(tool.name) + estimate_tokens(orjson.dumps(tool.parameters).decode())
    return total


def count_choice_tokens(choice: MockChoice) -> int:
    total = estimate_tokens(choice.text) if choice.text else 0
    for call in choice.tool_calls:
        total += TOOL_CALL_OVERHEAD_TOKENS + estimate_tokens(call.name) + estimate_tokens(call.arguments_json)
    return max(1, total)


# ---------------------------------------------------------------------------------------------
# Generation


def generate(inp: MockInput) -> MockOutput:
    """Produce ``inp.n`` deterministic choices plus usage for a parsed request."""
    filtered = any(CONTENT_FILTER_MARKER in m.text for m in inp.messages)
    choices = [_make_choice(inp, i, filtered) for i in range(max(1, inp.n))]
    return MockOutput(
        choices=choices,
        prompt_tokens=count_prompt_tokens(inp),
        completion_tokens=sum(count_choice_tokens(c) for c in choices),
    )


def _make_choice(inp: MockInput, index: int, filtered: bool) -> MockChoice:
    if filtered:
        return MockChoice(text=None, tool_calls=[], finish_reason="content_filter")
    tools = _tools_to_call(inp)
    if tools:
        calls = [_make_tool_call(inp, tool, index, k) for k, tool in enumerate(tools)]
        return MockChoice(text=None, tool_calls=calls, finish_reason="tool_calls")
    return _finish_text(_reply_text(inp, index), inp)


def _tools_to_call(inp: MockInput) -> list[MockTool]:
    """Which tools the "model" calls: forced choices always call, "auto" stops after a result."""
    choice = inp.tool_choice
    if not inp.tools or choice == "none":
        return []
    if isinstance(choice, Mapping):
        name = choice.get("name")
        named = [t for t in inp.tools if t.name == name]
        return named or [MockTool(name=str(name))]
    last = inp.messages[-1] if inp.messages else None
    if choice == "auto" and last is not None and last.is_tool_result:
        return []  # the model answers with the tool result instead of calling again
    if inp.parallel_tool_calls and len(inp.tools) >= 2:
        return inp.tools[:2]
    return inp.tools[:1]


def _make_tool_call(inp: MockInput, tool: MockTool, choice_index: int, call_index: int) -> MockToolCall:
    args = schema_example(tool.parameters)
    if not isinstance(args, dict):
        args = {}
    seed = f"{inp.model}\x00{_last_text(inp)}\x00{tool.name}\x00{choice_index}\x00{call_index}"
    call_id = hashlib.blake2b(seed.encode(), digest_size=12).hexdigest()
    arguments_json = orjson.dumps(args).decode()
    return MockToolCall(id=call_id, name=tool.name, arguments_json=arguments_json, arguments=args)


def _last_text(inp: MockInput) -> str:
    return inp.messages[-1].text if inp.messages else ""


def _echo(text: str) -> str:
    text = " ".join(text.split())  # collapse newlines so replies stay one line
    return text if len(text) <= ECHO_LIMIT else text[: ECHO_LIMIT - 3] + "..."


def _reply_text(inp: MockInput, index: int) -> str:
    speaker = f"Mock reply from {inp.model}" if index == 0 else f"Mock reply {index + 1} from {inp.model}"
    last = inp.messages[-1] if inp.messages else None
    if last is not None and last.is_tool_result:
        body = f"the {last.tool_name or 'tool'} tool returned: {_echo(last.text)}"
    else:
        user = next((m.text for m in reversed(inp.messages) if m.role == "user" and not m.is_tool_result), "")
        body = _echo(user)
    text = f"{speaker}: {body}"
    if inp.json_schema is not None:
        value = schema_example(inp.json_schema, hint=text)
        return orjson.dumps(value).decode()
    if inp.json_mode:
        return orjson.dumps({"reply": text}).decode()
    return text


def _finish_text(text: str, inp: MockInput) -> MockChoice:
    """Apply stop sequences and max_tokens in generation order: whichever comes first wins."""
    cut, matched = _first_stop(text, inp.stop)
    limit = inp.max_tokens * CHARS_PER_TOKEN if inp.max_tokens is not None else None
    if limit is not None and limit < min(cut, len(text)):
        return MockChoice(text=text[:limit], tool_calls=[], finish_reason="length")
    return MockChoice(text=text[:cut], tool_calls=[], finish_reason="stop", stop_sequence=matched)


def _first_stop(text: str, stops: list[str]) -> tuple[int, str | None]:
    best, matched = len(text), None
    for stop in stops:
        pos = text.find(stop) if stop else -1
        if 0 <= pos < best:
            best, matched = pos, stop
    return best, matched


# ---------------------------------------------------------------------------------------------
# JSON schema -> example value (tool arguments, structured outputs)

_STRING_FORMATS = {
    "date-time": "2024-01-01T00:00:00Z",
    "date": "2024-01-01",
    "time": "00:00:00",
    "email": "mock@example.com",
    "uri": "https://example.com/mock",
    "url": "https://example.com/mock",
    "uuid": "00000000-0000-4000-8000-000000000000",
}


def schema_example(schema: Any, hint: str = "mock", root: Any = None, depth: int = 0) -> Any:
    """A value that validates against ``schema`` (the common subset of JSON schema).

    Objects get their *required* properties, enums their first value, numbers respect
    minimum/maximum, arrays their minItems (at least one item).
    """
    if not isinstance(schema, Mapping) or depth > _MAX_SCHEMA_DEPTH:
        return None if depth > _MAX_SCHEMA_DEPTH else {}
    root = schema if root is None else root
    if "$ref" in schema:
        return schema_example(_resolve_ref(root, schema["$ref"]), hint, root, depth + 1)
    if "const" in schema:
        return schema["const"]
    if schema.get("enum"):
        return schema["enum"][0]
    for key in ("anyOf", "oneOf", "allOf"):
        if schema.get(key):
            return schema_example(schema[key][0], hint, root, depth + 1)
    kind = _schema_type(schema)
    if kind == "object":
        props: Mapping[str, Any] = schema.get("properties") or {}
        return {
            name: schema_example(props.get(name, {}), f"mock-{name}", root, depth + 1)
            for name in schema.get("required") or []
        }
    if kind == "array":
        item = schema_example(schema.get("items", {}), hint, root, depth + 1)
        return [item] * max(1, int(schema.get("minItems", 1)))
    if kind == "string":
        return _string_example(schema, hint)
    if kind in ("integer", "number"):
        return _number_example(schema, kind)
    if kind == "boolean":
        return True
    return None


def _schema_type(schema: Mapping[str, Any]) -> str:
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    if kind is None:
        return "object" if "properties" in schema else "string"
    return str(kind)


def _resolve_ref(root: Any, ref: str) -> Any:
    node = root
    for part in ref.lstrip("#/").split("/"):
        if not isinstance(node, Mapping) or part not in node:
            return {}
        node = node[part]
    return node


def _string_example(schema: Mapping[str, Any], hint: str) -> str:
    value = _STRING_FORMATS.get(str(schema.get("format")), hint)
    min_len = int(schema.get("minLength", 0))
    max_len = schema.get("maxLength")
    if len(value) < min_len:
        value = value.ljust(min_len, "x")
    return value[: int(max_len)] if max_len is not None else value


def _number_example(schema: Mapping[str, Any], kind: str) -> int | float:
    low = schema.get("minimum", schema.get("exclusiveMinimum"))
    high = schema.get("maximum", schema.get("exclusiveMaximum"))
    value: float = 1 if low is None else low + (1 if "exclusiveMinimum" in schema else 0)
    if high is not None and value > high:
        value = high - (1 if "exclusiveMaximum" in schema else 0)
    return int(value) if kind == "integer" else float(value)


# ---------------------------------------------------------------------------------------------
# Embeddings


def embed(inputs: list[str], dimensions: int) -> list[list[float]]:
    """Deterministic unit vectors: SHAKE-256 of the text gives ``dimensions`` int16 coordinates."""
    return [_unit_vector(text, dimensions) for text in inputs]


def _unit_vector(text: str, dimensions: int) -> list[float]:
    raw = hashlib.shake_256(text.encode()).digest(dimensions * 2)
    coords = struct.unpack(f"<{dimensions}h", raw)
    scale = 1.0 / (math.hypot(*coords) or 1.0)
    return [c * scale for c in coords]
