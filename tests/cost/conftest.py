"""The gateway suite's fixtures (real gateways and mock upstreams on loopback), shared here."""

from tests.gateway.conftest import _secrets_env, openai_upstream, start_gateway, upstreams

__all__ = ["_secrets_env", "openai_upstream", "start_gateway", "upstreams"]
