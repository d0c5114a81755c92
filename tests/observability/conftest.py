"""The gateway tests' fixtures (real mock upstreams on loopback, test secrets in the env)."""

from tests.gateway.conftest import _secrets_env, openai_upstream, start_gateway, upstreams

__all__ = ["_secrets_env", "openai_upstream", "start_gateway", "upstreams"]
