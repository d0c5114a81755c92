"""Upstream error texts, cleaned before they reach clients, logs or /api/v1/stats (probe finding 4).

Upstreams sometimes echo the credential they were sent ("Incorrect API key provided: sk-...").
Called once, where the attempt loop catches an upstream error: the one place that knows both
the error and the key the gateway used for that model.
"""

from __future__ import annotations

from aimm_gateway.errors import GatewayError
from aimm_gateway.security.detectors import scrub_secrets


def scrub_error(exc: GatewayError, upstream_key: str | None) -> None:
    cleaned = scrub_secrets(exc.message, (upstream_key,) if upstream_key else ())
    if cleaned != exc.message:
        exc.message = cleaned
        exc.args = (cleaned,)
