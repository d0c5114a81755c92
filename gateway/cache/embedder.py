"""Embeddings for the semantic cache, from a configured model of the runtime snapshot."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from aimm_gateway.canonical import validate_embeddings
from aimm_gateway.errors import GatewayError
from aimm_gateway.providers.base import EmbeddingCall
from aimm_gateway.runtime import Runtime

log = logging.getLogger("aimm.cache")
Embedder = Callable[[str, str], Awaitable[list[float] | None]]  # (text, request id) -> vector


def runtime_embedder(rt: Runtime, name: str) -> Embedder | None:
    """None when the model cannot serve (missing key, disabled): the semantic cache stays off."""
    model = rt.models.get(name)
    if model is None or not model.enabled or name in rt.unusable:
        return None
    provider = rt.providers[name]

    async def embed(text: str, request_id: str) -> list[float] | None:
        body = {"model": name, "input": text}
        call = EmbeddingCall(
            model, validate_embeddings(body), body, rt.api_key_values.get(name), model.timeouts, request_id
        )
        try:
            response = await provider.embed(call)
            return [float(x) for x in response["data"][0]["embedding"]]
        except (GatewayError, KeyError, IndexError, TypeError, ValueError) as exc:
            log.warning("semantic cache: embedding failed (%s); exact match only", type(exc).__name__)
            return None

    return embed
