"""An OpenAI-wire upstream double that records what it was sent and can echo the caller's key
in its error text (as real providers do: "Incorrect API key provided: sk-...")."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from tests.servers import run_asgi_app


@dataclass
class EchoUpstream:
    url: str = ""
    status: int = 401
    answer: str = ""  # with status 200: the assistant's text (streamed in 3-character chunks if asked)
    calls: list[dict[str, Any]] = field(default_factory=list)


@contextmanager
def echo_upstream(status: int = 401, answer: str = "") -> Iterator[EchoUpstream]:
    state = EchoUpstream(status=status, answer=answer)

    async def chat(request: Request) -> Response:
        auth = request.headers.get("authorization", "")
        body = await request.json()
        state.calls.append({"authorization": auth, "body": body})
        if state.status == 200 and state.answer:
            return _answer(state.answer, bool(body.get("stream")))
        message = f"Incorrect API key provided: {auth.removeprefix('Bearer ')}. Also seen: sk-proj-ABCDEFGHIJKLMNOPQRSTUV123456"
        return JSONResponse({"error": {"message": message, "type": "invalid_request_error"}}, status_code=state.status)

    app = Starlette(routes=[Route("/v1/chat/completions", chat, methods=["POST"])])
    with run_asgi_app(app) as url:
        state.url = url
        yield state


def _answer(text: str, stream: bool) -> Response:
    usage = {"prompt_tokens": 5, "completion_tokens": 10, "total_tokens": 15}
    base = {"id": "chatcmpl-1", "created": 1, "model": "m"}
    if not stream:
        choice = {"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}
        return JSONResponse({**base, "object": "chat.completion", "choices": [choice], "usage": usage})

    def event(delta: dict[str, Any], finish: str | None = None) -> bytes:
        chunk = {
            **base,
            "object": "chat.completion.chunk",
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
        }
        return b"data: " + orjson.dumps(chunk) + b"\n\n"

    async def events() -> Any:
        yield event({"role": "assistant", "content": ""})
        for i in range(0, len(text), 3):
            yield event({"content": text[i : i + 3]})
        yield event({}, "stop")
        yield (
            b"data: "
            + orjson.dumps({**base, "object": "chat.completion.chunk", "choices": [], "usage": usage})
            + b"\n\n"
        )
        yield b"data: [DONE]\n\n"

    return StreamingResponse(events(), media_type="text/event-stream")
