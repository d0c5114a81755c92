"""Run the gateway under an ASGI server (uvicorn by default; granian for comparison)."""

from __future__ import annotations

import logging
import os

from aimm_gateway.app import create_app
from aimm_gateway.service import Gateway

log = logging.getLogger("aimm.gateway")


def app_from_env() -> object:
    """ASGI factory for servers that import the app by name (granian): config from AIMM_CONFIG."""
    return create_app(Gateway.from_file(os.environ["AIMM_CONFIG"]))


def _announce(gateway: Gateway, host: str, port: int) -> None:
    rt = gateway.runtime
    usable = [m.name for m in rt.usable_models()]
    log.info("aimm gateway on http://%s:%d (config %s, hash %s)", host, port, gateway.config_path, rt.config_hash)
    log.info("usable models: %s; routes: %s", ", ".join(usable) or "none", ", ".join(rt.routes) or "none")
    for name, why in rt.unusable.items():
        log.info("model %s is not usable: %s", name, why)
    if not rt.config.auth.enabled:
        log.warning("auth is DISABLED: anyone who can reach this port can spend your provider budget")


def serve(config: str, host: str | None, port: int | None, server: str = "uvicorn", workers: int = 1) -> int:
    gateway = Gateway.from_file(config)  # validate before binding: a bad file fails fast
    host = host or gateway.file_config.server.host
    port = port or gateway.file_config.server.port
    _announce(gateway, host, port)
    if server == "granian":
        from granian import Granian
        from granian.constants import Interfaces

        os.environ["AIMM_CONFIG"] = config
        Granian(
            "aimm_gateway.serve:app_from_env",
            address=host,
            port=port,
            interface=Interfaces.ASGI,
            factory=True,
            workers=workers,
        ).serve()
        return 0
    import uvicorn

    uvicorn.run(
        create_app(gateway),
        host=host,
        port=port,
        loop="uvloop",
        http="httptools",
        log_level="warning",
        access_log=False,
        timeout_graceful_shutdown=30,
    )
    return 0
