"""The live feed's tests reuse the gateway fixtures: real mock upstreams and a real gateway on loopback."""

from tests.gateway.conftest import _secrets_env, start_gateway, upstreams  # noqa: F401  (fixtures)
