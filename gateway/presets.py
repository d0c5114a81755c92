"""Provider presets: which wire format a provider speaks, where it lives, how it authenticates.

A model names its `provider`; the preset fills in what the user did not say. Adding an
OpenAI-compatible provider is one line here.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class WireFormat(StrEnum):
    OPENAI = "openai"
    ANTHROPIC = "anthropic"
    GEMINI = "gemini"
    COHERE = "cohere"
    BEDROCK = "bedrock"
    AZURE = "azure"
    VERTEX = "vertex"
    MOCK = "mock"


class AuthStyle(StrEnum):
    BEARER = "bearer"  # Authorization: Bearer <key>
    X_API_KEY = "x-api-key"  # Anthropic
    X_GOOG_API_KEY = "x-goog-api-key"  # Gemini API
    API_KEY = "api-key"  # Azure OpenAI key auth (Entra tokens use bearer)
    SIGV4 = "sigv4"  # AWS Bedrock: request signing with AWS credentials
    GOOGLE_OAUTH = "google-oauth"  # Vertex AI: service-account access token
    NONE = "none"


@dataclass(frozen=True, slots=True)
class ProviderPreset:
    wire: WireFormat
    base_url: str | None  # None: the model must set base_url
    auth: AuthStyle
    key_env: str | None  # conventional env var holding the key
    key_required: bool = True
    base_url_required: bool = False  # no default endpoint: the model must set base_url


_OPENAI_COMPATIBLE: dict[str, tuple[str | None, str | None]] = {
    # provider: (base URL, conventional API key env var)
    "openai": ("https://api.openai.com/v1", "OPENAI_API_KEY"),
    "deepseek": ("https://api.deepseek.com/v1", "DEEPSEEK_API_KEY"),
    "xai": ("https://api.x.ai/v1", "XAI_API_KEY"),
    "mistral": ("https://api.mistral.ai/v1", "MISTRAL_API_KEY"),
    "groq": ("https://api.groq.com/openai/v1", "GROQ_API_KEY"),
    "together": ("https://api.together.xyz/v1", "TOGETHER_API_KEY"),
    "fireworks": ("https://api.fireworks.ai/inference/v1", "FIREWORKS_API_KEY"),
    "openrouter": ("https://openrouter.ai/api/v1", "OPENROUTER_API_KEY"),
    "qwen": ("https://dashscope-intl.aliyuncs.com/compatible-mode/v1", "DASHSCOPE_API_KEY"),
    "meta_llama": ("https://api.llama.com/compat/v1", "LLAMA_API_KEY"),
    "moonshot": ("https://api.moonshot.ai/v1", "MOONSHOT_API_KEY"),
    "zhipu": ("https://open.bigmodel.cn/api/paas/v4", "ZHIPUAI_API_KEY"),
    "perplexity": ("https://api.perplexity.ai", "PERPLEXITY_API_KEY"),
    "cerebras": ("https://api.cerebras.ai/v1", "CEREBRAS_API_KEY"),
    "deepinfra": ("https://api.deepinfra.com/v1/openai", "DEEPINFRA_API_KEY"),
    "nvidia_nim": ("https://integrate.api.nvidia.com/v1", "NVIDIA_API_KEY"),
    "openai_compatible": (None, None),
}

_LOCAL: dict[str, str] = {
    "ollama": "http://localhost:11434/v1",
    "vllm": "http://localhost:8000/v1",
}


def _build() -> dict[str, ProviderPreset]:
    presets: dict[str, ProviderPreset] = {}
    for name, (url, env) in _OPENAI_COMPATIBLE.items():
        presets[name] = ProviderPreset(
            WireFormat.OPENAI,
            url,
            AuthStyle.BEARER,
            env,
            key_required=url is not None,
            base_url_required=url is None,
        )
    for name, url in _LOCAL.items():
        presets[name] = ProviderPreset(WireFormat.OPENAI, url, AuthStyle.BEARER, None, key_required=False)
    presets["anthropic"] = ProviderPreset(
        WireFormat.ANTHROPIC, "https://api.anthropic.com", AuthStyle.X_API_KEY, "ANTHROPIC_API_KEY"
    )
    presets["gemini"] = ProviderPreset(
        WireFormat.GEMINI,
        "https://generativelanguage.googleapis.com",
        AuthStyle.X_GOOG_API_KEY,
        "GEMINI_API_KEY",
    )
    presets["cohere"] = ProviderPreset(WireFormat.COHERE, "https://api.cohere.com", AuthStyle.BEARER, "CO_API_KEY")
    # Endpoints derived from region/location when base_url is not set.
    presets["bedrock"] = ProviderPreset(WireFormat.BEDROCK, None, AuthStyle.SIGV4, None, key_required=False)
    presets["vertex"] = ProviderPreset(WireFormat.VERTEX, None, AuthStyle.GOOGLE_OAUTH, None, key_required=False)
    presets["azure"] = ProviderPreset(
        WireFormat.AZURE, None, AuthStyle.API_KEY, "AZURE_OPENAI_API_KEY", base_url_required=True
    )
    presets["mock"] = ProviderPreset(WireFormat.MOCK, None, AuthStyle.NONE, None, key_required=False)
    return presets


PRESETS: dict[str, ProviderPreset] = _build()
PROVIDER_NAMES: tuple[str, ...] = tuple(PRESETS)


def preset_for(provider: str) -> ProviderPreset:
    return PRESETS[provider]
