"""The semantic cache behind its flag, with the official SDK as client.

The embedding upstream is a double speaking OpenAI's embeddings wire format with bag-of-words
vectors (the mock provider's hash vectors make every different text dissimilar, so they cannot
show similarity); chat goes to the real mock upstream, whose call count proves what was cached.
"""

from __future__ import annotations

import asyncio
import hashlib
import math
import re
from collections.abc import Callable, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import openai
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from aimm_gateway.budget.periods import window
from aimm_gateway.cache.semantic import cosine, nearest, remember
from tests.cost.stores import wait_for_rows
from tests.gateway.conftest import API_KEY, RunningGateway, Upstream, base_config, upstream_model
from tests.gateway.resilience_helpers import upstream_count
from tests.servers import run_asgi_app

DIMS = 64


def bag_of_words(text: str) -> list[float]:
    vector = [0.0] * DIMS
    for word in re.findall(r"[a-z]+", text.lower()):
        if word in ("user", "assistant", "system"):
            continue  # role labels of the prompt text
        vector[int(hashlib.sha256(word.encode()).hexdigest(), 16) % DIMS] += 1.0
    return vector


@pytest.fixture
def embeddings_upstream() -> Iterator[tuple[str, list[str]]]:
    calls: list[str] = []

    async def embeddings(request: Request) -> JSONResponse:
        body = await request.json()
        calls.append(str(body["input"]))
        inputs = body["input"] if isinstance(body["input"], list) else [body["input"]]
        data = [{"object": "embedding", "index": i, "embedding": bag_of_words(t)} for i, t in enumerate(inputs)]
        tokens = sum(len(t.split()) for t in inputs)
        usage = {"prompt_tokens": tokens, "total_tokens": tokens}
        return JSONResponse({"object": "list", "data": data, "model": body["model"], "usage": usage})

    with run_asgi_app(Starlette(routes=[Route("/v1/embeddings", embeddings, methods=["POST"])])) as url:
        yield url, calls


def test_similar_prompts_reuse_an_answer(
    start_gateway: Callable[[dict[str, Any]], RunningGateway],
    openai_upstream: Upstream,
    embeddings_upstream: tuple[str, list[str]],
) -> None:
    embeddings_url, embed_calls = embeddings_upstream
    embedder = {
        "name": "embedder", "provider": "openai_compatible", "base_url": f"{embeddings_url}/v1",
        "api_key": {"env": "AIMM_TEST_UPSTREAM_KEY"}, "capabilities": ["embeddings"],
    }  # fmt: skip
    semantic = {"embedding_model": "embedder", "threshold": 0.9}
    gw = start_gateway(
        base_config([upstream_model("gpt", openai_upstream), embedder], cache={"enabled": True, "semantic": semantic})
    )
    client = openai.OpenAI(base_url=gw.v1, api_key=API_KEY, max_retries=0)

    def ask(text: str, **extra: Any) -> Any:
        return client.chat.completions.with_raw_response.create(
            model="gpt", temperature=0, messages=[{"role": "user", "content": text}], **extra
        )

    first = ask("What is the capital of France?")
    assert first.headers["x-aimm-cache"] == "miss"
    same_words = ask("what is the capital of france")
    assert same_words.headers["x-aimm-cache"] == "hit" and same_words.headers["x-aimm-cache-similarity"] == "1.0000"
    close = ask("What is the capital city of France?")  # cosine 6/sqrt(42) = 0.926
    assert close.headers["x-aimm-cache"] == "hit" and float(close.headers["x-aimm-cache-similarity"]) < 1
    assert close.parse().choices[0].message.content == first.parse().choices[0].message.content
    assert upstream_count(openai_upstream) == 1
    embedded = len(embed_calls)
    assert ask("What is the capital of France?").headers["x-aimm-cache"] == "hit"  # exact hit...
    assert len(embed_calls) == embedded  # ...needs no embedding call
    assert ask("Tell me a joke about penguins").headers["x-aimm-cache"] == "miss"
    assert ask("What is the capital of France?", max_tokens=7).headers["x-aimm-cache"] == "miss"  # another scope
    assert upstream_count(openai_upstream) == 3


def test_index_math() -> None:
    assert cosine([1, 0], [1, 0]) == 1 and cosine([1, 0], [0, 1]) == 0 and cosine([1], [1, 2]) == 0
    entries = remember([], "a", [1.0, 0.0], 2)
    entries = remember(entries, "b", [0.0, 1.0], 2)
    entries = remember(entries, "c", [1.0, 1.0], 2)  # bounded: "a" is forgotten
    assert [k for k, _ in entries] == ["b", "c"]
    found = nearest(entries, [0.1, 1.0], 0.9)
    assert found is not None and found[0] == "b" and math.isclose(found[1], cosine([0.1, 1.0], [0.0, 1.0]))
    assert nearest(entries, [1.0, -1.0], 0.5) is None


def test_unknown_embedding_model_is_a_config_error() -> None:
    from aimm_gateway.config import ConfigError, parse_config

    with pytest.raises(ConfigError, match=r"cache\.semantic\.embedding_model: unknown model .nope."):
        parse_config({"cache": {"enabled": True, "semantic": {"embedding_model": "nope"}}})


def test_embedding_calls_are_recorded_and_charged(
    start_gateway: Callable[[dict[str, Any]], RunningGateway],
    openai_upstream: Upstream,
    embeddings_upstream: tuple[str, list[str]],
    tmp_path: Path,
) -> None:
    embeddings_url, embed_calls = embeddings_upstream
    embedder = {
        "name": "embedder", "provider": "openai_compatible", "base_url": f"{embeddings_url}/v1",
        "api_key": {"env": "AIMM_TEST_UPSTREAM_KEY"}, "capabilities": ["embeddings"],
        "pricing": {"input_per_1k": "1", "output_per_1k": "0"},  # $0.001 per word the double counts
    }  # fmt: skip
    budgets = [
        {"name": "embeddings", "limit_usd": "1", "action": "alert", "models": ["embedder"]},
        {"name": "chat-only", "limit_usd": "1", "action": "alert", "models": ["gpt"]},
    ]
    db = tmp_path / "usage.db"
    gw = start_gateway(
        base_config(
            [upstream_model("gpt", openai_upstream, pricing={"input_per_1k": "0", "output_per_1k": "0"}), embedder],
            cache={"enabled": True, "semantic": {"embedding_model": "embedder", "threshold": 0.9}},
            budgets=budgets,
            store={"sqlite_path": str(db), "flush_interval_s": 0.05},
        )
    )
    client = openai.OpenAI(base_url=gw.v1, api_key=API_KEY, max_retries=0)
    for text in ("What is the capital of France?", "what is the capital of france"):  # a miss, a semantic hit
        client.chat.completions.create(model="gpt", temperature=0, messages=[{"role": "user", "content": text}])
    words = sum(len(t.split()) for t in embed_calls)
    assert len(embed_calls) == 2 and words > 0
    expected = Decimal(words) / 1000

    assert _state_spent(gw, "embeddings") == expected  # counted against the budget covering the embedding model
    assert _state_spent(gw, "chat-only") == 0  # the chat model is free here; the embedding is not its

    columns = "request_id, api, model, key_name, cost_units, prompt_tokens, route_reason, cache_hit"
    rows = [tuple(r) for r in wait_for_rows(db, columns, 4)]
    embedding_rows = [r for r in rows if r[6] == "semantic_cache_embedding"]
    chat_rows = [r for r in rows if r[6] != "semantic_cache_embedding"]
    assert len(embedding_rows) == 2 and len(chat_rows) == 2
    assert {r[0] for r in embedding_rows} == {r[0] for r in chat_rows}  # each under its request's id
    assert all(r[1:4] == ("embeddings", "embedder", "tests") for r in embedding_rows)
    assert sum(r[4] for r in embedding_rows) == int(expected * 10**10) and sum(r[5] for r in embedding_rows) == words
    assert [r[7] for r in chat_rows] == [0, 1]
    with gw.client() as http:
        status = {b["name"]: b for b in http.get("/api/v1/budgets").json()["budgets"]}
    assert Decimal(status["embeddings"]["costThisPeriod"]) == expected.quantize(Decimal("0.0001"))


def _state_spent(gw: RunningGateway, name: str) -> Decimal:
    """The budget's counter in the gateway's (in-process) state layer."""
    services = gw.gateway.cost
    budget = next(b for b in gw.gateway.runtime.config.budgets if b.name == name)
    return asyncio.run(services.state.spent(window(budget, services.budgets.clock()).key))
