"""Runtime model changes made through /admin, layered over the config file.

They survive config reloads: the effective config is always `file config + overrides`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from aimm_gateway.config import GatewayConfig, ModelConfig, RouteConfig


@dataclass
class ModelOverrides:
    added: dict[str, ModelConfig] = field(default_factory=dict)
    enabled: dict[str, bool] = field(default_factory=dict)
    # An admin's weight is the model's weight everywhere: its own, and every route target naming
    # it (a target's explicit weight would otherwise hide the change on that route).
    weight: dict[str, float] = field(default_factory=dict)

    def apply(self, config: GatewayConfig) -> GatewayConfig:
        if not self.added and not self.enabled and not self.weight:
            return config
        models = [m for m in config.models if m.name not in self.added] + list(self.added.values())
        models = [self._model(m) for m in models]
        routes = [self._route(r) for r in config.routes] if self.weight else config.routes
        return config.model_copy(update={"models": models, "routes": routes})

    def _model(self, m: ModelConfig) -> ModelConfig:
        update: dict[str, object] = {}
        if m.name in self.enabled:
            update["enabled"] = self.enabled[m.name]
        if m.name in self.weight:
            update["weight"] = self.weight[m.name]
        return m.model_copy(update=update) if update else m

    def _route(self, r: RouteConfig) -> RouteConfig:
        if not any(t.model in self.weight and "weight" in t.model_fields_set for t in r.targets):
            return r
        targets = [
            t.model_copy(update={"weight": self.weight[t.model]})
            if t.model in self.weight and "weight" in t.model_fields_set
            else t
            for t in r.targets
        ]
        return r.model_copy(update={"targets": targets})


def effective_weight(route: RouteConfig, models: dict[str, ModelConfig], target: int) -> float:
    """A route target's weight as routing uses it: its own when set explicitly, else its model's."""
    t = route.targets[target]
    if "weight" in t.model_fields_set or t.model not in models:
        return t.weight
    return models[t.model].weight


def zero_weight_routes(config: GatewayConfig, model: str) -> list[str]:
    """Routes naming `model` whose every target would weigh 0: weighted routing would then have
    nothing to weigh (the config refuses explicit all-zero targets; the admin API refuses this)."""
    models = {m.name: m for m in config.models}
    return [
        r.name
        for r in config.routes
        if any(t.model == model for t in r.targets)
        and all(effective_weight(r, models, i) == 0 for i in range(len(r.targets)))
    ]
