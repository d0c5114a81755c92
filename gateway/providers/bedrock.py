"""AWS Bedrock Converse / ConverseStream behind the OpenAI-shaped contract, signed with SigV4.

Translation lives in `bedrock_translate` (pure, unit-tested) and the shared plumbing in `exchange`;
this module signs, and reads the binary event stream (`eventstream`) into the shared loop.
Credentials come from the model's `bedrock` SecretRefs, resolved when the Runtime is built;
without them the model is unusable.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import orjson
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import ReadOnlyCredentials

from aimm_gateway.canonical import ChatChunk, ChatCompletion
from aimm_gateway.config import BedrockSettings, ModelConfig
from aimm_gateway.errors import UpstreamError
from aimm_gateway.providers.base import EmbeddingCall, UpstreamCall
from aimm_gateway.providers.bedrock_translate import (
    SIGNING_NAME,
    ConverseStreamTranslator,
    bedrock_error,
    from_converse_response,
    from_titan_responses,
    header,
    model_path,
    stream_exception,
    titan_inputs,
    titan_request,
    to_converse_request,
)
from aimm_gateway.providers.eventstream import CONTENT_TYPE as EVENTSTREAM
from aimm_gateway.providers.eventstream import iter_eventstream
from aimm_gateway.providers.exchange import Upstream, translate_stream
from aimm_gateway.providers.http import UpstreamPools

_JSON = "application/json"
EMBED_CONCURRENCY = 8  # Titan embeds one text per call: bound the fan-out of a batch


class BedrockProvider:
    def __init__(self, model: ModelConfig, endpoint: str, pools: UpstreamPools) -> None:
        if model.bedrock is None:
            raise ValueError(f"model {model.name!r}: provider 'bedrock' needs `bedrock` settings")
        self._provider = model.provider
        self._base = endpoint.rstrip("/")
        self._upstream = Upstream(pools.for_url(endpoint), model.provider, bedrock_error)
        credentials, self._problem = resolve_credentials(model.bedrock)
        self._signer = SigV4Auth(credentials, SIGNING_NAME, model.bedrock.region) if credentials else None

    def unusable_reason(self) -> str | None:
        """Why this model can't serve (missing AWS credentials), or None; runtime.py asks."""
        return self._problem

    def signed_headers(self, url: str, body: bytes, accept: str, extra: dict[str, str]) -> dict[str, str]:
        """Headers of a POST signed with SigV4 by botocore (X-Amz-Date, Authorization, token)."""
        if self._signer is None:
            raise UpstreamError(f"{self._provider}: {self._problem}", status=502, retryable=False, kind="upstream_auth")
        request = AWSRequest(
            method="POST", url=url, data=body, headers={**extra, "content-type": _JSON, "accept": accept}
        )
        self._signer.add_auth(request)
        return dict(request.headers.items())

    def _url(self, model_id: str, operation: str) -> str:
        return self._base + model_path(model_id, operation)

    async def complete(self, call: UpstreamCall) -> ChatCompletion:
        model_id = call.model.upstream_model
        url = self._url(model_id, "converse")
        body = orjson.dumps(to_converse_request(call.request))
        headers = self.signed_headers(url, body, _JSON, call.headers)
        resp = await self._upstream.post(url, headers, body, call.timeouts)
        data = self._upstream.decode(resp.body)
        return from_converse_response(data, model_id, request_id=header(resp.headers, "x-amzn-RequestId"))

    async def stream(self, call: UpstreamCall) -> AsyncIterator[ChatChunk]:
        model_id = call.model.upstream_model
        url = self._url(model_id, "converse-stream")
        body = orjson.dumps(to_converse_request(call.request))
        headers = self.signed_headers(url, body, EVENTSTREAM, call.headers)
        async with self._upstream.stream(url, headers, body, call.timeouts) as resp:
            translator = ConverseStreamTranslator(model_id, request_id=header(resp.headers, "x-amzn-RequestId"))
            # The answer is whole at messageStop; usage follows in metadata, whose loss costs only the counts.
            async for out in translate_stream(
                self._events(resp.chunks),
                translator,
                self._provider,
                terminal="messageStop",
                complete=lambda: translator.stopped,
            ):
                yield out

    async def _events(self, chunks: AsyncIterator[bytes]) -> AsyncIterator[tuple[str, dict[str, Any]]]:
        async for message in iter_eventstream(chunks, self._provider):
            if message.kind != "event":
                raise stream_exception(self._provider, message.name, message.payload, message.error_message)
            yield message.name, self._upstream.decode(message.payload)

    async def embed(self, call: EmbeddingCall) -> dict[str, Any]:
        texts = titan_inputs(call.request)
        url = self._url(call.model.upstream_model, "invoke")
        gate = asyncio.Semaphore(EMBED_CONCURRENCY)

        async def one(text: str) -> dict[str, Any]:
            body = orjson.dumps(titan_request(text, call.request))
            async with gate:  # signed inside: a signature is only valid for minutes after X-Amz-Date
                headers = self.signed_headers(url, body, _JSON, call.headers)
                return await self._upstream.post_json(url, headers, body, call.timeouts)

        try:
            # A TaskGroup cancels the other calls as soon as one fails.
            async with asyncio.TaskGroup() as group:
                tasks = [group.create_task(one(text)) for text in texts]
        except ExceptionGroup as failed:
            raise failed.exceptions[0] from None  # the caller handles UpstreamError, not groups
        results = [task.result() for task in tasks]
        return from_titan_responses(results, call.model.upstream_model, call.request.encoding_format)


def resolve_credentials(settings: BedrockSettings) -> tuple[ReadOnlyCredentials | None, str | None]:
    """The AWS credentials, or None and why not (names the unset references, never values)."""
    access = settings.access_key_id.resolve()
    secret = settings.secret_access_key.resolve()
    token = settings.session_token.resolve() if settings.session_token is not None else None
    missing = [
        ref.describe()
        for ref, value in ((settings.access_key_id, access), (settings.secret_access_key, secret))
        if value is None
    ]
    if settings.session_token is not None and token is None:
        missing.append(settings.session_token.describe())
    if missing or access is None or secret is None:
        return None, f"no AWS credentials ({', '.join(missing)} not set)"
    return ReadOnlyCredentials(access, secret, token), None
