"""AWS Bedrock Runtime wire format: Converse, ConverseStream and Titan embeddings (InvokeModel).

Pure functions, usable in-process and by the HTTP mock app:

* :func:`verify_signature` checks SigV4 exactly as AWS does: it recomputes the signature with
  botocore from the raw path, the signed headers and the body, for the known :data:`CREDENTIALS`
  (403 with ``x-amzn-ErrorType`` otherwise);
* :func:`parse_converse` validates a Converse body the way Bedrock does (roles, first message from
  the user, alternation, toolUse/toolResult pairing, toolConfig, inferenceConfig ranges) and
  returns a :class:`MockInput`; errors are 400 ``ValidationException``;
* :func:`render_converse` / :func:`render_converse_stream` shape an engine output as a Converse
  response / the ConverseStream events (``{eventType: payload}``, as botocore presents them);
* :func:`encode_frame` writes one binary event-stream frame (prelude, headers, payload, CRC32s);
* :func:`render_invoke` answers a Titan text-embeddings ``invoke``.

Errors are ``{"message": ...}`` with the exception name in the ``x-amzn-ErrorType`` header.
"""

from __future__ import annotations

import binascii
import hmac
import struct
import uuid
import zlib
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime, timedelta
from types import MappingProxyType
from typing import Any
from urllib.parse import quote

import orjson
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import ReadOnlyCredentials

from .credentials import (
    ACCESS_KEY_ID,
    SECRET_ACCESS_KEY,
    SESSION_ACCESS_KEY_ID,
    SESSION_SECRET_ACCESS_KEY,
    SESSION_TOKEN,
)
from .engine import (
    MockChoice,
    MockInput,
    MockMessage,
    MockOutput,
    MockTool,
    MockValidationError,
    embed,
    estimate_tokens,
)
from .openai_wire import IMAGE_TEXT, split_text
from .wire import for_status, optional_list

__all__ = [
    "ACCESS_KEY_ID",
    "CREDENTIALS",
    "EVENTSTREAM_CONTENT_TYPE",
    "SECRET_ACCESS_KEY",
    "SESSION_ACCESS_KEY_ID",
    "SESSION_SECRET_ACCESS_KEY",
    "SESSION_TOKEN",
    "BedrockDialect",
    "encode_frame",
    "error_body",
    "fault_error_body",
    "parse_converse",
    "render_converse",
    "render_converse_stream",
    "render_invoke",
    "verify_signature",
]

# The test credentials the mock accepts: access key id -> (secret, session token or None).
CREDENTIALS: Mapping[str, tuple[str, str | None]] = MappingProxyType(
    {ACCESS_KEY_ID: (SECRET_ACCESS_KEY, None), SESSION_ACCESS_KEY_ID: (SESSION_SECRET_ACCESS_KEY, SESSION_TOKEN)}
)
SIGNING_NAME = "bedrock"
MAX_CLOCK_SKEW = timedelta(minutes=5)
EVENTSTREAM_CONTENT_TYPE = "application/vnd.amazon.eventstream"
DEFAULT_MODELS = (
    "anthropic.claude-3-5-sonnet-20240620-v1:0",
    "us.anthropic.claude-sonnet-4-20250514-v1:0",
    "amazon.nova-pro-v1:0",
    "meta.llama3-1-70b-instruct-v1:0",
    "amazon.titan-embed-text-v2:0",
    "amazon.titan-embed-text-v1",
)
CONVERSE_PARAMS = frozenset(
    {
        "messages",
        "system",
        "inferenceConfig",
        "toolConfig",
        "guardrailConfig",
        "additionalModelRequestFields",
        "promptVariables",
        "additionalModelResponseFieldPaths",
        "requestMetadata",
        "performanceConfig",
        "serviceTier",
        "outputConfig",
    }
)
IMAGE_FORMATS = ("png", "jpeg", "gif", "webp")
MAX_STOP_SEQUENCES = 2500
_SIGNATURE_MISMATCH = (
    "The request signature we calculated does not match the signature you provided. Check your AWS Secret "
    "Access Key and signing method. Consult the service documentation for details."
)
_STOP_REASONS = {
    "stop": "end_turn",
    "length": "max_tokens",
    "tool_calls": "tool_use",
    "content_filter": "content_filtered",
}
_PAD = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"  # Bedrock pads events with "p"


# ---------------------------------------------------------------------------------------------
# Errors


class AwsErrorBody(dict[str, Any]):
    """An error body (``{"message": ...}`` on the wire) that also knows its exception name.

    The name travels in the ``x-amzn-ErrorType`` header, not in the JSON (orjson serializes only
    the dict), so the dialect reads it from here.
    """

    error_type: str = "ValidationException"


def error_body(error_type: str, message: str) -> AwsErrorBody:
    body = AwsErrorBody(message=message)
    body.error_type = error_type
    return body


def aws_error(status: int, error_type: str, message: str) -> MockValidationError:
    return MockValidationError(status, error_body(error_type, message))


def _invalid(message: str) -> MockValidationError:
    return aws_error(400, "ValidationException", message)


def _constraint(path: str, value: Any, constraint: str) -> MockValidationError:
    shown = "null" if value is None else str(value)
    return _invalid(
        f"1 validation error detected: Value '{shown}' at '{path}' failed to satisfy constraint: {constraint}"
    )


def _missing(path: str) -> MockValidationError:
    return _invalid(
        f"1 validation error detected: Value null at '{path}' failed to satisfy constraint: Member must not be null"
    )


_FAULT_ERRORS: dict[int, tuple[str, str]] = {
    400: ("ValidationException", "Malformed input request (injected by mock)."),
    403: ("AccessDeniedException", "You don't have access to the model with the specified model ID."),
    404: ("ResourceNotFoundException", "Could not resolve the foundation model from the provided model identifier."),
    408: ("ModelTimeoutException", "Model has timed out in processing the request. Try your request again."),
    424: (
        "ModelErrorException",
        "The system encountered an unexpected error during processing. Try your request again.",
    ),
    429: ("ThrottlingException", "Too many requests, please wait before trying again."),
    500: ("InternalServerException", "The server encountered an error processing your request."),
    503: ("ServiceUnavailableException", "Bedrock is unable to process your request."),
}


def fault_error_body(status: int) -> AwsErrorBody:
    server, client = ("InternalServerException", "Internal server error"), ("ValidationException", "Error")
    return error_body(*for_status(_FAULT_ERRORS, status, server, client))


def error_type_header(error_type: str) -> str:
    return f"{error_type}:http://internal.amazon.com/coral/com.amazon.bedrock/"


# ---------------------------------------------------------------------------------------------
# SigV4


def verify_signature(
    method: str,
    raw_path: bytes,
    query: bytes,
    headers: Mapping[str, str],
    body: bytes,
    now: datetime | None = None,
) -> None:
    """Recompute the request's SigV4 signature with botocore; raise a 403 like AWS when it differs."""
    authorization = headers.get("authorization")
    if not authorization:
        raise aws_error(403, "MissingAuthenticationTokenException", "Missing Authentication Token")
    credential, signed_headers, signature = _parse_authorization(authorization)
    access_key, date, region, service, terminator = (credential.split("/") + [""] * 5)[:5]
    known = CREDENTIALS.get(access_key)
    if known is None:
        raise aws_error(403, "UnrecognizedClientException", "The security token included in the request is invalid.")
    secret, token = known
    if token is not None and headers.get("x-amz-security-token") != token:
        raise aws_error(403, "UnrecognizedClientException", "The security token included in the request is invalid.")
    if service != SIGNING_NAME or terminator != "aws4_request":
        raise aws_error(
            403, "InvalidSignatureException", f"Credential should be scoped to correct service: '{SIGNING_NAME}'. "
        )
    amz_date = _check_date(headers.get("x-amz-date"), date, now or datetime.now(UTC))
    names = signed_headers.split(";")
    host = headers.get("host", "")
    url = f"http://{host}{raw_path.decode('latin-1')}" + (f"?{query.decode('latin-1')}" if query else "")
    request = AWSRequest(method=method, url=url, data=body, headers={n: headers.get(n, "") for n in names})
    request.context["timestamp"] = amz_date
    signer = SigV4Auth(ReadOnlyCredentials(access_key, secret, token), service, region)
    canonical = signer.canonical_request(request)
    expected = signer.signature(signer.string_to_sign(request, canonical), request)
    if signer.signed_headers(signer.headers_to_sign(request)) != signed_headers or not hmac.compare_digest(
        expected, signature
    ):
        raise aws_error(403, "InvalidSignatureException", _SIGNATURE_MISMATCH)


def _parse_authorization(value: str) -> tuple[str, str, str]:
    scheme, _, params = value.partition(" ")
    fields = dict(part.strip().partition("=")[::2] for part in params.split(","))
    missing = [k for k in ("Credential", "SignedHeaders", "Signature") if not fields.get(k)]
    if scheme != "AWS4-HMAC-SHA256" or missing:
        raise aws_error(
            403,
            "IncompleteSignatureException",
            f"Authorization header requires {', '.join(missing) or 'the AWS4-HMAC-SHA256 scheme'}. "
            f"Authorization={value.split(' Signature=')[0]}",
        )
    return fields["Credential"], fields["SignedHeaders"], fields["Signature"]


def _check_date(amz_date: str | None, scope_date: str, now: datetime) -> str:
    try:
        when = datetime.strptime(amz_date or "", "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
    except ValueError:
        raise aws_error(
            403,
            "IncompleteSignatureException",
            "Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header.",
        ) from None
    assert amz_date is not None
    if amz_date[:8] != scope_date:
        raise aws_error(
            403,
            "InvalidSignatureException",
            f"Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from HTTP: "
            f"'{scope_date}' != '{amz_date[:8]}', from '{amz_date}'.",
        )
    if abs(now - when) > MAX_CLOCK_SKEW:
        earliest = (now - MAX_CLOCK_SKEW).strftime("%Y%m%dT%H%M%SZ")
        raise aws_error(
            403,
            "InvalidSignatureException",
            f"Signature expired: {amz_date} is now earlier than {earliest} ({now.strftime('%Y%m%dT%H%M%SZ')} - 5 min.)",
        )
    return amz_date


# ---------------------------------------------------------------------------------------------
# Event-stream frames


def encode_frame(headers: Mapping[str, str], payload: bytes) -> bytes:
    """One `application/vnd.amazon.eventstream` message with string headers and both CRC32s."""
    raw_headers = b"".join(_encode_header(name, value) for name, value in headers.items())
    total = 12 + len(raw_headers) + len(payload) + 4
    prelude = struct.pack(">II", total, len(raw_headers))
    message = prelude + struct.pack(">I", zlib.crc32(prelude)) + raw_headers + payload
    return message + struct.pack(">I", zlib.crc32(message))


def _encode_header(name: str, value: str) -> bytes:
    key, data = name.encode(), value.encode()
    return struct.pack(">B", len(key)) + key + b"\x07" + struct.pack(">H", len(data)) + data  # 7: string


def event_frame(event_type: str, payload: Mapping[str, Any]) -> bytes:
    headers = {":event-type": event_type, ":content-type": "application/json", ":message-type": "event"}
    return encode_frame(headers, orjson.dumps(payload))


def exception_frame(exception_type: str, message: str) -> bytes:
    headers = {":exception-type": exception_type, ":content-type": "application/json", ":message-type": "exception"}
    return encode_frame(headers, orjson.dumps({"message": message}))


# ---------------------------------------------------------------------------------------------
# Converse request validation


def parse_converse(model_id: str, body: Any) -> MockInput:
    """Validate a Converse / ConverseStream body like Bedrock and turn it into engine input."""
    if not isinstance(body, dict):
        raise aws_error(400, "SerializationException", "Start of structure or map found where not expected.")
    for key in body:
        if key not in CONVERSE_PARAMS:
            raise _invalid(
                f"Malformed input request: extraneous key [{key}] is not permitted, please reformat "
                "your input and try again."
            )
    tools, tool_choice = _parse_tool_config(body.get("toolConfig"))
    messages, uses_tools = _parse_messages(body.get("messages"))
    if uses_tools and body.get("toolConfig") is None:
        raise _invalid("The toolConfig field must be defined when using toolUse and toolResult content blocks.")
    max_tokens, stop = _parse_inference(body.get("inferenceConfig"))
    schema = _parse_output_config(body.get("outputConfig"))
    return MockInput(
        model=model_id,
        messages=_parse_system(body.get("system")) + messages,
        tools=tools,
        tool_choice=tool_choice,
        max_tokens=max_tokens,
        stop=stop,
        json_mode=schema is not None,
        json_schema=schema,
    )


def _parse_system(raw: Any) -> list[MockMessage]:
    texts = []
    for i, block in enumerate(optional_list(raw, lambda: _constraint("system", raw, "Member must be a list"))):
        if not isinstance(block, dict) or not block:
            raise _invalid(f"The system field at system.{i} is empty. Add a SystemContentBlock and try again.")
        if "text" in block:
            texts.append(_non_blank(block["text"], f"The text field in the SystemContentBlock object at system.{i}"))
    return [MockMessage("system", "\n".join(texts))] if texts else []


def _non_blank(text: Any, where: str) -> str:
    if not isinstance(text, str):
        raise _invalid(f"{where} must be a string.")
    if not text.strip():
        raise _invalid(f"{where} is blank. Add text to the text field, and try again.")
    return text


def _parse_messages(raw: Any) -> tuple[list[MockMessage], bool]:
    """Engine messages, and whether any toolUse/toolResult block appeared."""
    if raw is None:
        raise _missing("messages")
    if not isinstance(raw, list):
        raise _constraint("messages", raw, "Member must be a list")
    if not raw:
        raise _invalid(
            "A conversation must start with a user message. Try again with a conversation that starts "
            "with a user message."
        )
    out: list[MockMessage] = []
    tool_names: dict[str, str] = {}  # toolUseId -> tool name, to label results
    pending: list[str] = []  # toolUse ids of the previous assistant turn
    uses_tools = False
    for i, msg in enumerate(raw):
        role, blocks = _message(i, msg, raw[i - 1] if i else None)
        _check_pairing(i, blocks, pending)
        pending = [b["toolUse"]["toolUseId"] for b in blocks if "toolUse" in b]
        tool_names.update({b["toolUse"]["toolUseId"]: b["toolUse"]["name"] for b in blocks if "toolUse" in b})
        uses_tools = uses_tools or any("toolUse" in b or "toolResult" in b for b in blocks)
        out.extend(_to_mock_messages(role, blocks, tool_names))
    return out, uses_tools


def _message(i: int, msg: Any, previous: Any) -> tuple[str, list[dict[str, Any]]]:
    if not isinstance(msg, dict):
        raise _constraint(f"messages.{i + 1}.member", msg, "Member must be a structure")
    role = msg.get("role")
    if role is None:
        raise _missing(f"messages.{i + 1}.member.role")
    if role not in ("user", "assistant"):
        raise _constraint(
            f"messages.{i + 1}.member.role", role, "Member must satisfy enum value set: [user, assistant]"
        )
    if i == 0 and role != "user":
        raise _invalid(
            "A conversation must start with a user message. Try again with a conversation that starts "
            "with a user message."
        )
    if isinstance(previous, dict) and previous.get("role") == role:
        raise _invalid(
            "A conversation must alternate between user and assistant roles. Make sure the conversation "
            "alternates between user and assistant roles and try again."
        )
    content = msg.get("content")
    if content is None:
        raise _missing(f"messages.{i + 1}.member.content")
    if not isinstance(content, list) or not content:
        raise _invalid(
            f"The content field in the Message object at messages.{i} is empty. Add a ContentBlock object "
            "to the content field and try again."
        )
    for j, block in enumerate(content):
        _check_block(f"messages.{i}.content.{j}", role, block)
    return role, content


def _check_block(where: str, role: str, block: Any) -> None:
    if not isinstance(block, dict) or len(block) != 1:
        raise _invalid(f"The ContentBlock object at {where} must set exactly one of its members.")
    kind = next(iter(block))
    value = block[kind]
    if kind == "text":
        _non_blank(value, f"The text field in the ContentBlock object at {where}")
    elif kind == "image":
        _check_image(f"{where}.image", value)
    elif kind == "toolUse":
        _check_tool_use(where, role, value)
    elif kind == "toolResult":
        _check_tool_result(where, role, value)
    elif kind not in (
        "document",
        "video",
        "audio",
        "cachePoint",
        "reasoningContent",
        "guardContent",
        "citationsContent",
    ):
        raise _invalid(f"The ContentBlock object at {where} has an unknown member [{kind}].")


def _check_image(where: str, image: Any) -> None:
    if not isinstance(image, dict):
        raise _missing(where)
    if image.get("format") not in IMAGE_FORMATS:
        raise _constraint(
            f"{where}.format", image.get("format"), "Member must satisfy enum value set: [png, jpeg, gif, webp]"
        )
    source = image.get("source")
    if not isinstance(source, dict) or len(source) != 1:
        raise _invalid(f"The source field at {where} must set exactly one of bytes or s3Location.")
    if "bytes" in source and not _is_base64(source["bytes"]):
        raise aws_error(400, "SerializationException", f"Invalid base64 data at {where}.source.bytes")
    if "s3Location" in source and not isinstance((source["s3Location"] or {}).get("uri"), str):
        raise _missing(f"{where}.source.s3Location.uri")


def _is_base64(value: Any) -> bool:
    if not isinstance(value, str) or not value:
        return False
    try:
        binascii.a2b_base64(value, strict_mode=True)
    except (binascii.Error, ValueError):
        return False
    return True


def _check_tool_use(where: str, role: str, use: Any) -> None:
    if role != "assistant":
        raise _invalid(f"The toolUse block at {where} is only allowed in assistant messages.")
    if not isinstance(use, dict):
        raise _missing(f"{where}.toolUse")
    for key in ("toolUseId", "name"):
        if not isinstance(use.get(key), str) or not use[key]:
            raise _missing(f"{where}.toolUse.{key}")
    if not isinstance(use.get("input"), dict):
        raise _invalid(f"The input field at {where}.toolUse must be a JSON object.")


def _check_tool_result(where: str, role: str, result: Any) -> None:
    if role != "user":
        raise _invalid(f"The toolResult block at {where} is only allowed in user messages.")
    if not isinstance(result, dict) or not isinstance(result.get("toolUseId"), str):
        raise _missing(f"{where}.toolResult.toolUseId")
    content = result.get("content")
    if not isinstance(content, list):
        raise _missing(f"{where}.toolResult.content")
    for k, part in enumerate(content):
        if (
            not isinstance(part, dict)
            or len(part) != 1
            or next(iter(part)) not in ("text", "json", "image", "document")
        ):
            raise _invalid(
                f"The ToolResultContentBlock at {where}.toolResult.content.{k} must set exactly one of "
                "text, json, image or document."
            )
    status = result.get("status")
    if status is not None and status not in ("success", "error"):
        raise _constraint(f"{where}.toolResult.status", status, "Member must satisfy enum value set: [success, error]")


def _check_pairing(i: int, blocks: list[dict[str, Any]], pending: list[str]) -> None:
    """Each toolUse must be answered by a toolResult in the very next message, and only those."""
    results = [b["toolResult"]["toolUseId"] for b in blocks if "toolResult" in b]
    if len(results) > len(pending):
        raise _invalid(
            f"The number of toolResult blocks at messages.{i}.content exceeds the number of toolUse "
            "blocks of previous turn."
        )
    missing = [tid for tid in pending if tid not in results]
    if missing:
        raise _invalid(
            f"Expected toolResult blocks at messages.{i}.content for the following Ids: {', '.join(missing)}"
        )
    unknown = [tid for tid in results if tid not in pending]
    if unknown:
        raise _invalid(
            f"The toolResult blocks at messages.{i}.content contain unknown toolUseIds: {', '.join(unknown)}"
        )


def _to_mock_messages(role: str, blocks: list[dict[str, Any]], tool_names: dict[str, str]) -> list[MockMessage]:
    out: list[MockMessage] = []
    texts: list[str] = []
    for block in blocks:
        if "toolResult" in block:
            result = block["toolResult"]
            name = tool_names.get(result["toolUseId"])
            out.append(MockMessage("tool", _result_text(result), is_tool_result=True, tool_name=name))
        elif "text" in block:
            texts.append(block["text"])
        elif "image" in block:
            texts.append(IMAGE_TEXT)
    if texts or not out:
        out.append(MockMessage(role, "\n".join(texts)))
    return out


def _result_text(result: dict[str, Any]) -> str:
    parts = []
    for part in result["content"]:
        if "text" in part:
            parts.append(str(part["text"]))
        elif "json" in part:
            parts.append(orjson.dumps(part["json"]).decode())
        else:
            parts.append(IMAGE_TEXT)
    return "\n".join(parts)


def _parse_inference(raw: Any) -> tuple[int | None, list[str]]:
    if raw is None:
        return None, []
    if not isinstance(raw, dict):
        raise _constraint("inferenceConfig", raw, "Member must be a structure")
    max_tokens = raw.get("maxTokens")
    if max_tokens is not None and (isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens < 1):
        raise _constraint("inferenceConfig.maxTokens", max_tokens, "Member must have value greater than or equal to 1")
    for key in ("temperature", "topP"):
        value = raw.get(key)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise _constraint(f"inferenceConfig.{key}", value, "Member must be a number")
        if value < 0:
            raise _constraint(f"inferenceConfig.{key}", value, "Member must have value greater than or equal to 0")
        if value > 1:
            raise _constraint(f"inferenceConfig.{key}", value, "Member must have value less than or equal to 1")
    stop = raw.get("stopSequences") or []
    if not isinstance(stop, list) or not all(isinstance(s, str) and s for s in stop):
        raise _constraint("inferenceConfig.stopSequences", stop, "Member must be a list of non-empty strings")
    if len(stop) > MAX_STOP_SEQUENCES:
        raise _constraint(
            "inferenceConfig.stopSequences", stop, f"Member must have length less than or equal to {MAX_STOP_SEQUENCES}"
        )
    return max_tokens, stop


def _parse_tool_config(raw: Any) -> tuple[list[MockTool], str | dict[str, str]]:
    if raw is None:
        return [], "auto"
    if not isinstance(raw, dict):
        raise _constraint("toolConfig", raw, "Member must be a structure")
    specs = raw.get("tools")
    if not isinstance(specs, list) or not specs:
        raise _constraint("toolConfig.tools", specs, "Member must have length greater than or equal to 1")
    if not all(isinstance(t, dict) and len(t) == 1 for t in specs):
        raise _invalid("Each Tool in toolConfig.tools must set exactly one of toolSpec, systemTool or cachePoint.")
    tools = [_tool_spec(k, t) for k, t in enumerate(specs) if "toolSpec" in t]
    return tools, _tool_choice(raw.get("toolChoice"), {t.name for t in tools})


def _tool_spec(k: int, tool: Any) -> MockTool:
    spec = tool.get("toolSpec")
    where = f"toolConfig.tools.{k + 1}.member.toolSpec"
    if not isinstance(spec, dict):
        raise _missing(where)
    name = spec.get("name")
    if (
        not isinstance(name, str)
        or not 1 <= len(name) <= 64
        or not all(c.isascii() and (c.isalnum() or c in "_-") for c in name)
    ):
        raise _constraint(f"{where}.name", name, "Member must satisfy regular expression pattern: [a-zA-Z0-9_-]+")
    if "description" in spec and not (isinstance(spec["description"], str) and spec["description"]):
        raise _constraint(
            f"{where}.description", spec["description"], "Member must have length greater than or equal to 1"
        )
    schema = (spec.get("inputSchema") or {}).get("json")
    if not isinstance(schema, dict):
        raise _missing(f"{where}.inputSchema.json")
    if schema.get("type", "object") != "object":
        raise _invalid(f"The json schema definition at {where}.inputSchema is invalid: the root type must be object.")
    return MockTool(name=name, parameters=schema)


def _tool_choice(raw: Any, names: set[str]) -> str | dict[str, str]:
    if raw is None:
        return "auto"
    if not isinstance(raw, dict) or len(raw) != 1 or next(iter(raw)) not in ("auto", "any", "tool"):
        raise _invalid("The toolChoice field must set exactly one of auto, any or tool.")
    kind, value = next(iter(raw.items()))
    if kind != "tool":
        return "auto" if kind == "auto" else "required"
    name = (value or {}).get("name")
    if name not in names:
        raise _invalid(f"The tool {name!r} in toolChoice is not defined in toolConfig.tools.")
    return {"name": name}


def _parse_output_config(raw: Any) -> dict[str, Any] | None:
    """Structured output: `outputConfig.textFormat` with a JSON schema passed as a string."""
    if raw is None:
        return None
    if not isinstance(raw, dict):
        raise _constraint("outputConfig", raw, "Member must be a structure")
    fmt = raw.get("textFormat")
    if fmt is None:
        return None
    if not isinstance(fmt, dict) or fmt.get("type") != "json_schema":
        kind = fmt.get("type") if isinstance(fmt, dict) else fmt
        raise _constraint("outputConfig.textFormat.type", kind, "Member must satisfy enum value set: [json_schema]")
    schema = ((fmt.get("structure") or {}).get("jsonSchema") or {}).get("schema")
    if not isinstance(schema, str):
        raise _missing("outputConfig.textFormat.structure.jsonSchema.schema")
    try:
        parsed = orjson.loads(schema)
    except orjson.JSONDecodeError:
        raise _invalid("The json schema definition at outputConfig.textFormat is not valid JSON.") from None
    if not isinstance(parsed, dict):
        raise _invalid("The json schema definition at outputConfig.textFormat must be a JSON object.")
    return parsed


# ---------------------------------------------------------------------------------------------
# Responses


def new_request_id() -> str:
    return str(uuid.uuid4())


def _content_blocks(choice: MockChoice) -> list[dict[str, Any]]:
    blocks: list[dict[str, Any]] = [{"text": choice.text}] if choice.text else []
    blocks.extend(
        {"toolUse": {"toolUseId": "tooluse_" + c.id, "name": c.name, "input": c.arguments}} for c in choice.tool_calls
    )
    return blocks


def _stop_reason(choice: MockChoice) -> str:
    return "stop_sequence" if choice.stop_sequence is not None else _STOP_REASONS[choice.finish_reason]


def _usage(out: MockOutput) -> dict[str, int]:
    return {"inputTokens": out.prompt_tokens, "outputTokens": out.completion_tokens, "totalTokens": out.total_tokens}


def _metrics(out: MockOutput) -> dict[str, int]:
    return {"latencyMs": 20 + out.completion_tokens}


def render_converse(model_id: str, out: MockOutput) -> dict[str, Any]:
    """A Converse response as Bedrock returns it (one choice; Converse has no `n`)."""
    choice = out.choices[0]
    return {
        "output": {"message": {"role": "assistant", "content": _content_blocks(choice)}},
        "stopReason": _stop_reason(choice),
        "usage": _usage(out),
        "metrics": _metrics(out),
    }


def render_converse_stream(model_id: str, out: MockOutput, chunks: int) -> Iterator[dict[str, Any]]:
    """ConverseStream events, each `{eventType: payload}`; text blocks open without a start event."""
    choice = out.choices[0]
    yield {"messageStart": {"role": "assistant"}}
    arguments = [c.arguments_json for c in choice.tool_calls]
    for index, block in enumerate(_content_blocks(choice)):
        if "text" in block:
            deltas: list[dict[str, Any]] = [{"text": piece} for piece in split_text(block["text"], chunks)]
        else:
            use = block["toolUse"]
            yield {
                "contentBlockStart": {
                    "contentBlockIndex": index,
                    "start": {"toolUse": {"toolUseId": use["toolUseId"], "name": use["name"]}},
                }
            }
            deltas = [{"toolUse": {"input": piece}} for piece in split_text(arguments.pop(0), chunks)]
        for delta in deltas:
            yield {"contentBlockDelta": {"contentBlockIndex": index, "delta": delta}}
        yield {"contentBlockStop": {"contentBlockIndex": index}}
    yield {"messageStop": {"stopReason": _stop_reason(choice)}}
    yield {"metadata": {"usage": _usage(out), "metrics": _metrics(out)}}


def stream_frame(event: Mapping[str, Any]) -> bytes:
    """The binary frame of one `{eventType: payload}` event, padded with "p" like Bedrock's."""
    ((event_type, payload),) = event.items()
    return event_frame(event_type, {**payload, "p": _PAD[: 1 + len(event_type) % len(_PAD)]})


# ---------------------------------------------------------------------------------------------
# Titan text embeddings (InvokeModel)


def render_invoke(model_id: str, body: Any) -> dict[str, Any]:
    """Answer `POST /model/{modelId}/invoke` for Titan text-embedding models."""
    if "titan-embed-text" not in model_id:
        raise _invalid("The provided model identifier is invalid.")
    v2 = "v2" in model_id
    allowed = {"inputText", "dimensions", "normalize", "embeddingTypes"} if v2 else {"inputText"}
    if not isinstance(body, dict):
        raise _invalid("Malformed input request: expected type: JSONObject, please reformat your input and try again.")
    for key in body:
        if key not in allowed:
            raise _invalid(
                f"Malformed input request: extraneous key [{key}] is not permitted, please reformat your "
                "input and try again."
            )
    text = body.get("inputText")
    if not isinstance(text, str) or not text:
        raise _invalid(
            "Malformed input request: #/inputText: expected minLength: 1, please reformat your input and try again."
        )
    dimensions = body.get("dimensions", 1024 if v2 else 1536)
    if dimensions not in (256, 512, 1024, 1536) or (v2 and dimensions == 1536):
        raise _invalid(
            f"Malformed input request: #/dimensions: {dimensions} is not a valid enum value, please "
            "reformat your input and try again."
        )
    (vector,) = embed([text], dimensions)
    response: dict[str, Any] = {"embedding": vector, "inputTextTokenCount": estimate_tokens(text)}
    if v2:
        response["embeddingsByType"] = {"float": vector}
    return response


# ---------------------------------------------------------------------------------------------
# HTTP dialect


class BedrockDialect:
    """What the Bedrock mock does differently at the HTTP level; see the server's dialects.

    Signatures are checked with the body (:func:`verify_request`), not here; they are always
    required, as AWS has no anonymous mode.
    """

    name = "bedrock"
    done_frame: bytes | None = None  # the stream ends after the metadata event

    def request_id_headers(self, request_id: str | None = None) -> dict[str, str]:
        return {"x-amzn-RequestId": request_id or new_request_id()}

    def check_request(self, request: Any, require_auth: bool) -> None:
        return None

    bad_request = staticmethod(_invalid)

    def invalid_json(self, detail: str) -> MockValidationError:
        return aws_error(400, "SerializationException", f"Could not parse request body into json: {detail}")

    fault_body = staticmethod(fault_error_body)

    def error_headers(self, status: int, body: Mapping[str, Any]) -> dict[str, str]:
        error_type = body.error_type if isinstance(body, AwsErrorBody) else fault_error_body(status).error_type
        return {"x-amzn-ErrorType": error_type_header(error_type)}

    def rate_limit_headers(self, retry_after_ms: int) -> dict[str, str]:
        return {}

    def frame(self, event: dict[str, Any]) -> bytes:
        return stream_frame(event)

    def error_frame(self) -> bytes:
        return exception_frame(
            "modelStreamErrorException", "The model stream encountered an error. Retry your request."
        )


def verify_request(request: Any, body: bytes) -> None:
    """SigV4 check of a Starlette request: the raw path as received, the signed headers, the body."""
    scope = request.scope
    raw_path = scope.get("raw_path") or quote(scope["path"]).encode()
    verify_signature(request.method, raw_path, scope.get("query_string", b""), request.headers, body)
