"""Azure OpenAI: the OpenAI wire format behind per-deployment URLs and Azure's own auth header.

`{endpoint}/openai/deployments/{deployment}/chat/completions?api-version=...` (and `/embeddings`),
with `api-key: <key>`, or `Authorization: Bearer <token>` when `azure.auth` is `entra` (the model's
api_key then holds an Entra ID access token). Everything else is the OpenAI-compatible adapter.

Azure specifics handled here:
- the deployment, not the body, picks the model, so `model` is not sent;
- a prompt blocked by Azure's content filter is a 400 with `code: content_filter`, kept as such;
- streams open with a chunk that only carries `prompt_filter_results` (`choices: []`, no usage):
  it is not part of the OpenAI chunk sequence, so it is dropped. `finish_reason: content_filter`
  and the `content_filter_results` fields on choices pass through untouched.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator
from contextlib import aclosing
from typing import Any, cast
from urllib.parse import quote, urlencode

import orjson

from aimm_gateway.canonical import ChatChunk
from aimm_gateway.config import AzureSettings, ModelConfig
from aimm_gateway.errors import UpstreamError
from aimm_gateway.presets import AuthStyle
from aimm_gateway.providers.base import UpstreamCall
from aimm_gateway.providers.http import UpstreamPools
from aimm_gateway.providers.openai_compat import OpenAICompatProvider

CONTENT_FILTER_CODE = "content_filter"


def deployment_base_url(endpoint: str, deployment: str) -> str:
    """`{endpoint}/openai/deployments/{deployment}`; an endpoint already ending in /openai is accepted."""
    root = endpoint.rstrip("/").removesuffix("/openai")
    return f"{root}/openai/deployments/{quote(deployment, safe='')}"


class AzureOpenAIProvider(OpenAICompatProvider):
    raw_stream = False  # its stream has chunks for the prompt filter that clients must not see

    def __init__(self, model: ModelConfig, endpoint: str, pools: UpstreamPools) -> None:
        settings = model.azure or AzureSettings()
        auth = AuthStyle.BEARER if settings.auth == "entra" else AuthStyle.API_KEY
        super().__init__(
            model.provider,
            deployment_base_url(endpoint, settings.deployment or model.upstream_model),
            auth,
            pools,
            query=urlencode({"api-version": settings.api_version}),
            send_model=False,
        )

    def _on_error(self, provider: str, status: int, headers: dict[str, str], body: bytes) -> UpstreamError:
        err = super()._on_error(provider, status, headers, body)
        if status == 400 and _error_code(body) == CONTENT_FILTER_CODE:
            # Same status and provider message; the code tells clients it was the prompt filter.
            return UpstreamError(
                err.message,
                status=400,
                retryable=False,
                kind=CONTENT_FILTER_CODE,
                param="messages",
                type="invalid_request_error",
            )
        return err

    async def stream(self, call: UpstreamCall) -> AsyncIterator[ChatChunk]:
        # Closed explicitly, so an abandoned stream releases its upstream connection at once.
        upstream = cast(AsyncGenerator[ChatChunk, None], super().stream(call))
        async with aclosing(upstream) as chunks:
            async for chunk in chunks:
                if chunk.get("choices") or chunk.get("usage"):
                    yield chunk


def _error_code(body: bytes) -> str | None:
    try:
        data: Any = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    err = data.get("error") if isinstance(data, dict) else None
    code = err.get("code") if isinstance(err, dict) else None
    return code if isinstance(code, str) else None
