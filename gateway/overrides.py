"""Runtime model changes made through /admin, layered over the config file.

They survive config reloads: the effective config is always `file config + overrides`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from aimm_gateway.config import GatewayConfig, ModelConfig


@dataclass
class ModelOverrides:
    added: dict[str, ModelConfig] = field(default_factory=dict)
    enabled: dict[str, bool] = field(default_factory=dict)

    def apply(self, config: GatewayConfig) -> GatewayConfig:
        if not self.added and not self.enabled:
            return config
        models = [m for m in config.models if m.name not in self.added] + list(self.added.values())
        models = [
            m.model_copy(update={"enabled": self.enabled[m.name]}) if m.name in self.enabled else m for m in models
        ]
        return config.model_copy(update={"models": models})
