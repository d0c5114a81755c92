"""An immutable snapshot of everything one request needs: config, models, routes, providers.

A request takes the current snapshot once and uses it to the end, so a reload never changes
the ground under an in-flight request; swapping the snapshot is one reference assignment.
"""

from __future__ import annotations

import hashlib
import importlib
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass, field

from aimm_gateway.config import BudgetConfig, GatewayConfig, ModelConfig, RouteConfig, SecretRef, config_hash
from aimm_gateway.presets import preset_for
from aimm_gateway.providers.base import ChatProvider
from aimm_gateway.providers.http import UpstreamPools
from aimm_gateway.providers.registry import build_provider
from aimm_gateway.security.config_keys import config_identity
from aimm_gateway.security.identity import Identity

log = logging.getLogger("aimm.gateway")


@dataclass(frozen=True, slots=True)
class Runtime:
    config: GatewayConfig
    config_hash: str
    models: dict[str, ModelConfig]
    routes: dict[str, RouteConfig]
    providers: dict[str, ChatProvider]
    api_keys: dict[bytes, str]  # sha256(key) -> key name
    api_key_values: dict[str, str]  # model name -> upstream key (never logged)
    unusable: dict[str, str]  # model name -> why it can't serve (e.g. missing key)
    admin_token_digest: bytes | None
    routable: dict[str, ModelConfig]  # models without a missing-credential problem (stable identity: plan cache key)
    identities: dict[str, Identity] = field(default_factory=dict)  # key name -> its Identity, built once
    namespace: str | None = None  # the gateway's namespace: usage rows, namespace-scoped budgets

    def budgets_for(self, model: str, key_name: str | None) -> list[BudgetConfig]:
        """The budgets whose scope covers this model and caller."""
        return [
            b
            for b in self.config.budgets
            if (not b.models or model in b.models) and (not b.api_keys or key_name in b.api_keys)
        ]

    def usable_models(self) -> list[ModelConfig]:
        return [m for m in self.models.values() if m.enabled and m.name not in self.unusable]


def build_runtime(
    config: GatewayConfig,
    pools: UpstreamPools,
    stored_keys: Mapping[str, str] | None = None,
    no_env_fallback: frozenset[str] = frozenset(),
) -> Runtime:
    """`stored_keys`: provider keys from the encrypted secret store (set over /admin).
    `no_env_fallback`: models added over /admin, which never get the provider's default variable."""
    if config.auth.jwt is not None:  # PyJWT + cryptography load here (startup or the reload thread), not in a request
        importlib.import_module("aimm_gateway.security.jwt_auth")
    models = {m.name: m for m in config.models}
    stored_keys = stored_keys or {}
    providers: dict[str, ChatProvider] = {}
    keys: dict[str, str] = {}
    unusable: dict[str, str] = {}
    for model in config.models:
        preset = preset_for(model.provider)
        key = stored_keys.get(model.name) or (model.api_key.resolve() if model.api_key else None)
        if key is None and model.api_key is None and preset.key_env and model.name not in no_env_fallback:
            # No explicit reference: fall back to the provider's conventional variable.
            key = SecretRef(env=preset.key_env).resolve()
        if key is None and preset.key_required:
            where = model.api_key.describe() if model.api_key else f"env {preset.key_env}"
            unusable[model.name] = f"no API key ({where} is not set)"
        if key is not None:
            keys[model.name] = key
        provider = build_provider(model, pools)
        providers[model.name] = provider
        # Adapters with their own credentials (SigV4, Google service accounts) can say why they can't serve.
        problem = getattr(provider, "unusable_reason", None)
        if problem is not None and (reason := problem()) is not None:
            unusable[model.name] = reason
    api_keys: dict[bytes, str] = {}
    for entry in config.auth.api_keys:
        value = entry.key.resolve()
        if value is None:
            log.warning("api key %r: %s is not set; that key cannot log in", entry.name, entry.key.describe())
            continue
        api_keys[hashlib.sha256(value.encode()).digest()] = entry.name
    admin = config.admin.token.resolve() if config.admin.token else None
    return Runtime(
        config=config,
        config_hash=config_hash(config),
        models=models,
        routes={r.name: r for r in config.routes},
        providers=providers,
        api_keys=api_keys,
        api_key_values=keys,
        unusable=unusable,
        admin_token_digest=hashlib.sha256(admin.encode()).digest() if admin else None,
        routable={n: m for n, m in models.items() if n not in unusable} if unusable else models,
        identities={e.name: config_identity(e) for e in config.auth.api_keys},
        namespace=gateway_namespace(config),
    )


def gateway_namespace(config: GatewayConfig) -> str | None:
    """`server.namespace`, else the pod's (the operator sets POD_NAMESPACE from the downward API)."""
    return config.server.namespace or os.environ.get("POD_NAMESPACE") or None
