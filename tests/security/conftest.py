"""The gateway fixtures (real mock upstreams, a real gateway on loopback) shared with tests/gateway."""

from tests.gateway.conftest import _secrets_env, openai_upstream, start_gateway, upstreams

__all__ = ["_secrets_env", "openai_upstream", "start_gateway", "upstreams"]
