"""Embeddings for the semantic cache, from a configured model of the runtime snapshot.

Each call is billed by the provider, so it comes back with its usage and exact cost: the cache
stage records it as a usage row and counts it against the caller's budgets (stages/side_calls.py).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from decimal import Decimal

from aimm_gateway.canonical import Usage, validate_embeddings
from aimm_gateway.config import ModelConfig
from aimm_gateway.cost import request_cost
from aimm_gateway.errors import GatewayError
from aimm_gateway.providers.base import EmbeddingCall
from aimm_gateway.runtime import Runtime

log = logging.getLogger("aimm.cache")


@dataclass(frozen=True, slots=True)
class Embedding:
    vector: list[float]
    model: ModelConfig
    usage: Usage
    cost: Decimal
    latency_s: float


Embedder = Callable[[str, str], Awaitable[Embedding | None]]  # (text, request id) -> embedding


def runtime_embedder(rt: Runtime, name: str) -> Embedder | None:
    """None when the model cannot serve (missing key, disabled): the semantic cache stays off."""
    model = rt.models.get(name)
    if model is None or not model.enabled or name in rt.unusable:
        return None
    provider = rt.providers[name]

    async def embed(text: str, request_id: str) -> Embedding | None:
        body = {"model": name, "input": text}
        call = EmbeddingCall(
            model, validate_embeddings(body), body, rt.api_key_values.get(name), model.timeouts, request_id
        )
        started = time.perf_counter()
        try:
            response = await provider.embed(call)
            vector = [float(x) for x in response["data"][0]["embedding"]]
        except (GatewayError, KeyError, IndexError, TypeError, ValueError) as exc:
            log.warning("semantic cache: embedding failed (%s); exact match only", type(exc).__name__)
            return None
        usage = Usage.of_embeddings(response)
        return Embedding(vector, model, usage, request_cost(usage, model.pricing), time.perf_counter() - started)

    return embed
