"""Run the gateway under an ASGI server (uvicorn by default; granian for comparison).

One worker runs in this process; more run under the pre-fork supervisor (`aimm_gateway.workers`)."""

from __future__ import annotations

import asyncio
import gc
import logging
import math
import os
import resource
import signal
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aimm_gateway.app import create_app
from aimm_gateway.security.server_options import CertReloader, uvicorn_options
from aimm_gateway.service import Gateway

if TYPE_CHECKING:
    import uvicorn
    from starlette.applications import Starlette

log = logging.getLogger("aimm.gateway")


def app_from_env() -> object:
    """ASGI factory for servers that import the app by name (granian): config from AIMM_CONFIG."""
    app = create_app(Gateway.from_file(os.environ["AIMM_CONFIG"]))
    freeze_startup_objects()
    return app


def freeze_startup_objects() -> None:
    """Move everything alive after start-up (modules, schemas, config) out of the cyclic GC's view.

    Full collections otherwise walk those objects again and again; measured at concurrency 8, this
    takes the gateway's p99 from ~40-50 ms to ~8 ms (docs/benchmarks.md).
    """
    gc.collect()
    gc.freeze()


def reload_on_sighup(gateway: Gateway) -> None:
    """`kill -HUP <pid>` re-reads the config file now instead of at the next poll."""

    def on_hup(_signum: int, _frame: object) -> None:
        # Python runs this between two bytecodes of the loop's thread: hand the reload to the loop.
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return  # not serving (yet or any more): the watcher reads the file when it starts
        loop.call_soon_threadsafe(lambda: loop.create_task(_reload(gateway)))

    signal.signal(signal.SIGHUP, on_hup)


async def _reload(gateway: Gateway) -> None:
    if not await gateway.reload_soon():
        log.info("SIGHUP: config file %s unchanged (or refused), nothing reloaded", gateway.config_path)


def _announce(gateway: Gateway, host: str, port: int) -> None:
    rt = gateway.runtime
    usable = [m.name for m in rt.usable_models()]
    scheme = "https" if gateway.file_config.hardening.tls else "http"
    log.info("aimm gateway on %s://%s:%d (config %s, hash %s)", scheme, host, port, gateway.config_path, rt.config_hash)
    log.info("usable models: %s; routes: %s", ", ".join(usable) or "none", ", ".join(rt.routes) or "none")
    for name, why in rt.unusable.items():
        log.info("model %s is not usable: %s", name, why)
    if not rt.config.auth.enabled:
        log.warning("auth is DISABLED: anyone who can reach this port can spend your provider budget")


def uvicorn_config(app: Starlette, gateway: Gateway, grace_s: float, **extra: Any) -> uvicorn.Config:
    """The one uvicorn configuration, for a single process and for every supervised worker alike:
    hardening (header-read and idle timeouts, TLS with live certificate reload) included."""
    import uvicorn

    hardening = gateway.file_config.hardening
    config = uvicorn.Config(
        app,
        loop="uvloop",
        log_level="warning",
        access_log=False,
        # X-Forwarded-* is trusted from 127.0.0.1 only (uvicorn's default), which never proxies to a
        # pod: the middleware would do nothing but cost every request its pass (docs/benchmarks.md).
        # Client IPs behind trusted proxies are read by the rate-limit stage itself.
        proxy_headers=False,
        server_header=False,
        timeout_graceful_shutdown=math.ceil(grace_s),
        **uvicorn_options(hardening),  # header-read and idle timeouts, TLS
        **extra,
    )
    config.load()
    if config.ssl is not None and hardening.tls is not None:
        gateway.tls_reloader = CertReloader(config.ssl, hardening.tls)
    return config


def raise_fd_limit() -> None:
    """Thousands of open streams need two descriptors each (client + upstream): use the hard limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def serve(
    config: str,
    host: str | None,
    port: int | None,
    server: str = "uvicorn",
    workers: int | None = 1,
    grace_s: float = 25.0,
) -> int:
    """Serve `config`; `workers=None` picks the count (`workers.cpus.worker_count`)."""
    from aimm_gateway.workers.cpus import worker_count

    gateway = Gateway.from_file(config)  # validate before binding: a bad file fails fast
    workers = worker_count(workers, shared_state=gateway.file_config.state.redis is not None)
    host = host or gateway.file_config.server.host
    port = port or gateway.file_config.server.port
    _announce(gateway, host, port)
    raise_fd_limit()
    if server == "granian":
        return _serve_granian(config, host, port, workers)
    if workers > 1:
        return _supervise(config, host, port, workers, grace_s)
    import uvicorn

    app = create_app(gateway)
    server_config = uvicorn_config(app, gateway, grace_s, host=host, port=port)
    freeze_startup_objects()
    reload_on_sighup(gateway)
    uvicorn.Server(server_config).run()
    return 0


def _supervise(config: str, host: str, port: int, workers: int, grace_s: float) -> int:
    """Pre-fork: modules are imported once here and shared copy-on-write; each worker builds its own Gateway."""
    from aimm_gateway.workers.supervisor import Supervisor, bind_slots
    from aimm_gateway.workers.worker import WorkerSpec, run_worker

    sockets = bind_slots(host, port, workers)
    with tempfile.TemporaryDirectory(prefix="aimm-workers-") as run_dir:
        spec = WorkerSpec(config, workers, grace_s, Path(run_dir))
        supervisor = os.getpid()
        log.info("supervising %d workers (pid %d)", workers, os.getpid())
        gc.collect()
        gc.freeze()  # the collector never writes to pages inherited from here: they stay shared
        return Supervisor(sockets, lambda index, sock: run_worker(spec, index, sock, supervisor), grace_s).run()


def _serve_granian(config: str, host: str, port: int, workers: int) -> int:
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
