"""Pick the adapter for a model from its provider preset's wire format."""

from __future__ import annotations

from aimm_gateway.config import ModelConfig
from aimm_gateway.presets import WireFormat, preset_for
from aimm_gateway.providers.base import ChatProvider
from aimm_gateway.providers.http import UpstreamPools


def build_provider(model: ModelConfig, pools: UpstreamPools) -> ChatProvider:
    preset = preset_for(model.provider)
    if preset.wire is WireFormat.MOCK:
        from aimm_gateway.providers.mock import MockProvider

        return MockProvider(model.mock)
    endpoint = model.endpoint
    assert endpoint is not None  # config validation guarantees it
    if preset.wire is WireFormat.ANTHROPIC:
        from aimm_gateway.providers.anthropic import AnthropicProvider

        return AnthropicProvider(model.provider, endpoint, pools)
    from aimm_gateway.providers.openai_compat import OpenAICompatProvider

    return OpenAICompatProvider(model.provider, endpoint, preset.auth, pools)
