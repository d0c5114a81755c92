"""Pick the adapter for a model from its provider preset's wire format.

Adapters are imported lazily so a gateway only loads the formats its config uses.
"""

from __future__ import annotations

from aimm_gateway.config import ModelConfig
from aimm_gateway.presets import WireFormat, preset_for
from aimm_gateway.providers.base import ChatProvider
from aimm_gateway.providers.http import UpstreamPools


def build_provider(model: ModelConfig, pools: UpstreamPools) -> ChatProvider:
    preset = preset_for(model.provider)
    wire = preset.wire
    if wire is WireFormat.MOCK:
        from aimm_gateway.providers.mock import MockProvider

        return MockProvider(model.mock)
    endpoint = model.endpoint
    assert endpoint is not None  # config validation guarantees it
    if wire is WireFormat.OPENAI:
        from aimm_gateway.providers.openai_compat import OpenAICompatProvider

        return OpenAICompatProvider(model.provider, endpoint, preset.auth, pools)
    if wire is WireFormat.ANTHROPIC:
        from aimm_gateway.providers.anthropic import AnthropicProvider

        return AnthropicProvider(model.provider, endpoint, pools)
    if wire is WireFormat.GEMINI:
        from aimm_gateway.providers.gemini import GeminiProvider

        return GeminiProvider(model, endpoint, pools)
    if wire is WireFormat.COHERE:
        from aimm_gateway.providers.cohere import CohereProvider

        return CohereProvider(model, endpoint, pools)
    if wire is WireFormat.BEDROCK:
        from aimm_gateway.providers.bedrock import BedrockProvider

        return BedrockProvider(model, endpoint, pools)
    if wire is WireFormat.AZURE:
        from aimm_gateway.providers.azure import AzureOpenAIProvider

        return AzureOpenAIProvider(model, endpoint, pools)
    if wire is WireFormat.VERTEX:
        from aimm_gateway.providers.vertex import VertexProvider

        return VertexProvider(model, endpoint, pools)
    raise ValueError(f"no adapter for wire format {wire.value!r}")
