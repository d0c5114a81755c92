"""Content-policy fallback: a model that refuses (finish_reason content_filter) hands over to the next."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import orjson
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from aimm_gateway.mock import openai_wire
from aimm_gateway.mock.engine import MockChoice, MockOutput
from tests.gateway.conftest import RunningGateway, base_config
from tests.servers import run_asgi_app

Start = Callable[[dict[str, Any]], RunningGateway]


def _refusing_upstream() -> Starlette:
    """An OpenAI-format upstream whose policy refuses everything (rendered by the real wire module)."""

    async def chat(request: Request) -> Response:
        body = orjson.loads(await request.body())
        out = MockOutput([MockChoice(text="", tool_calls=[], finish_reason="content_filter")], 10, 0)
        return Response(orjson.dumps(openai_wire.render_completion(body, out)), media_type="application/json")

    app = Starlette(routes=[Route("/v1/chat/completions", chat, methods=["POST"])])
    return app


@pytest.fixture
def refusing_url() -> Iterator[str]:
    with run_asgi_app(_refusing_upstream()) as url:
        yield f"{url}/v1"


def _config(refusing_url: str, targets: list[str]) -> dict[str, Any]:
    models = [
        {"name": "strict", "provider": "openai_compatible", "base_url": refusing_url},
        {"name": "lenient", "provider": "mock"},
    ]
    return base_config(
        models, routes=[{"name": "r", "targets": [{"model": t, "priority": i} for i, t in enumerate(targets)]}]
    )


def test_refused_answer_falls_back_to_the_next_model(refusing_url: str, start_gateway: Start) -> None:
    gw = start_gateway(_config(refusing_url, ["strict", "lenient"]))
    with gw.client() as c:
        resp = c.post("/v1/chat/completions", json={"model": "r", "messages": [{"role": "user", "content": "hi"}]})
    assert resp.status_code == 200
    assert resp.json()["choices"][0]["finish_reason"] == "stop"
    assert resp.headers["x-aimm-model"] == "lenient" and resp.headers["x-aimm-attempts"] == "2"
    assert "content_filter" in resp.headers["x-aimm-route-reason"]


def test_when_every_model_refuses_the_refusal_is_returned_once_per_model(
    refusing_url: str, start_gateway: Start
) -> None:
    gw = start_gateway(_config(refusing_url, ["strict"]))
    with gw.client() as c:
        resp = c.post("/v1/chat/completions", json={"model": "r", "messages": [{"role": "user", "content": "hi"}]})
    assert resp.status_code == 200  # a refusal is an answer, not an error
    assert resp.json()["choices"][0]["finish_reason"] == "content_filter"
    assert resp.headers["x-aimm-attempts"] == "1"  # the same model is never asked again
