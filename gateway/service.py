"""The gateway's long-lived parts, wired once per process: no module-level state anywhere."""

from __future__ import annotations

import logging
import random
from pathlib import Path
from typing import Any

from aimm_gateway.backlog import Backlog
from aimm_gateway.budget.services import CostServices
from aimm_gateway.config import ConfigError, GatewayConfig, ModelConfig, SecretStoreSettings, load_config
from aimm_gateway.errors import GatewayError, InvalidRequest
from aimm_gateway.live.events import request_event
from aimm_gateway.live.feed import LiveFeed
from aimm_gateway.live.hub import LiveHub
from aimm_gateway.live.relay import LiveRelay
from aimm_gateway.metrics import GatewayMetrics
from aimm_gateway.overrides import ModelOverrides, zero_weight_routes
from aimm_gateway.pipeline import ChatPipeline
from aimm_gateway.providers.http import UpstreamPools
from aimm_gateway.reload import ConfigWatcher
from aimm_gateway.routing import RouterState, SystemClock
from aimm_gateway.runtime import Runtime, build_runtime
from aimm_gateway.security.audit_store import AuditStoreSink
from aimm_gateway.security.authn import Authenticator
from aimm_gateway.security.metrics import SecurityMetrics
from aimm_gateway.security.reload_guard import reload_refusal
from aimm_gateway.security.secret_store import SecretStore, open_secret_store
from aimm_gateway.security.server_options import CertReloader
from aimm_gateway.security.services import SecurityServices, build_audit
from aimm_gateway.stages.assembly import StageAssembly
from aimm_gateway.stages.base import StageDeps
from aimm_gateway.stats import LiveStats
from aimm_gateway.telemetry.parts import Telemetry

log = logging.getLogger("aimm.gateway")


class Gateway:
    def __init__(
        self, config: GatewayConfig, config_path: Path | None = None, telemetry: Telemetry | None = None
    ) -> None:
        self.config_path = config_path
        self.file_config = config
        self.overrides = ModelOverrides()
        self.metrics = GatewayMetrics()
        # Answers' bookkeeping (ledger statistics, access-log lines) held until this worker waits
        # on an upstream; readers of what it folds drain it first (`backlog.run()`).
        self.backlog = Backlog()
        self.telemetry = telemetry if telemetry is not None else Telemetry(backlog=self.backlog)
        self.stats = LiveStats()
        server = config.server
        self.pools = UpstreamPools(
            server.upstream_client, server.max_connections_per_upstream, self.backlog.upstream_waiting
        )
        self.clock = SystemClock()
        self.router = RouterState(self.clock, random.Random())
        self.cost = CostServices(config, self.metrics)  # state, usage store, budgets, cache
        self.security = SecurityServices(build_audit(config.hardening.audit), SecurityMetrics(self.metrics))
        self.auth = Authenticator(self.cost.state, self.security.audit, self.security.metrics)
        live = config.live
        self.live = LiveHub(request_event, live.subscriber_queue, live.max_subscribers, live.requests_sample_rate)
        deps = StageDeps(self.metrics, self.stats, self.cost, self.telemetry, security=self.security, live=self.live)
        self.stages = StageAssembly(deps)
        self.live.on_tail_change(self.stages.invalidate)  # the tail stage joins chains only while watched
        self.pipeline = ChatPipeline(self.router, self.metrics, self.stats, stages=self.stages, backlog=self.backlog)
        self.feed = LiveFeed(self.live, self, live.metrics_interval_s)
        self.cost.alerts.hooks.append(self.feed.budget_threshold)
        self._secrets: tuple[SecretStoreSettings, SecretStore] | None = None
        self.runtime: Runtime = self._build(config)
        self._watcher: ConfigWatcher[Runtime] | None = None
        self.tls_reloader: CertReloader | None = None  # set by `serve` when TLS is on
        self._relay: LiveRelay | None = None
        self._audit_store: AuditStoreSink | None = None
        self._publish_availability()

    @classmethod
    def from_file(cls, path: str | Path, telemetry: Telemetry | None = None) -> Gateway:
        path = Path(path)
        return cls(load_config(path), path, telemetry)

    # -- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        await self.cost.start(lambda: self.runtime.config.budgets)
        self._start_audit_store()
        if self.tls_reloader is not None:
            self.tls_reloader.start()
        if self.file_config.state.redis is not None:  # a fleet: the live feed goes fleet-wide
            self._relay = LiveRelay(self.live, self.cost.state, self.feed.peer_snapshot)
            self._relay.start()
            self.feed.join_fleet(self._relay.pod, self._relay.forward)
        if self.config_path is not None:
            self._watcher = ConfigWatcher(
                self.config_path,
                self.prepare_runtime,
                self.install_runtime,
                self._count_reload,
                lambda: self.file_config.server.reload_interval_s,
                current=self.file_config,
            )
            self._watcher.start()

    async def stop(self) -> None:
        if self._watcher is not None:
            await self._watcher.stop()
        if self._relay is not None:
            await self._relay.stop()
        await self.feed.close()
        await self.live.close()
        await self.pools.close()
        if self.tls_reloader is not None:
            await self.tls_reloader.stop()
        await self.auth.close()
        if self._audit_store is not None:  # before the store closes: flushes the queued records
            self.security.audit.remove_sink(self._audit_store)
            await self._audit_store.close()
        await self.cost.stop()  # after the server stopped taking requests: flushes the usage rows
        self.backlog.run()  # the last answers' statistics and access-log lines, before the final flush
        self.telemetry.shutdown()
        self.security.audit.close()

    def _start_audit_store(self) -> None:
        """`hardening.audit.store`: every audit record also goes to the usage store."""
        config = self.file_config
        usage = self.cost.usage
        if not config.hardening.audit.store or usage is None or config.store is None:
            return
        if not usage.ready:
            log.error(
                "hardening.audit.store: the usage store is unavailable; audit records go only to %s",
                config.hardening.audit.sink,
            )
            return
        sink = AuditStoreSink(usage.store, self.security.audit.chain, config.store, self.security.metrics.audit_dropped)
        sink.start()
        self.security.audit.add_sink(sink)
        self._audit_store = sink

    @property
    def audit_store(self) -> AuditStoreSink | None:
        """The audit trail's usage-store sink while it runs (`hardening.audit.store`), else None."""
        return self._audit_store

    def reload_now(self) -> bool:
        """Check the file now, in the caller's thread (tests)."""
        return self._watcher.check() if self._watcher is not None else False

    async def reload_soon(self) -> bool:
        """Check the file now instead of at the next interval, preparing off the loop (SIGHUP)."""
        return await self._watcher.check_async() if self._watcher is not None else False

    # -- config -----------------------------------------------------------------------------------

    def apply_file_config(self, config: GatewayConfig) -> None:
        self.install_runtime(config, self.prepare_runtime(config))

    def prepare_runtime(self, config: GatewayConfig) -> Runtime:
        """Build the runtime for a new file config; safe off the event loop (reloads run it in a thread)."""
        refusal = reload_refusal(self.file_config, config)
        if refusal is not None:
            raise ConfigError(f"{self.config_path}: {refusal}")
        return self._build(config)

    def install_runtime(self, config: GatewayConfig, runtime: Runtime) -> None:
        self.cost.check_reload(config)
        self.file_config = config
        self._swap(runtime)

    def _rebuild(self) -> None:
        self._swap(self._build(self.file_config))

    def _build(self, config: GatewayConfig) -> Runtime:
        store = self.secret_store(config)
        stored = {name: value for name in store.names() if (value := store.get(name))} if store else None
        return build_runtime(self.overrides.apply(config), self.pools, stored, frozenset(self.overrides.added))

    def secret_store(self, config: GatewayConfig | None = None) -> SecretStore | None:
        """The encrypted provider-key store of `admin.secret_store`, opened once per setting."""
        settings = (config or self.file_config).admin.secret_store
        if settings is None:
            return None
        if self._secrets is None or self._secrets[0] != settings:
            self._secrets = (settings, open_secret_store(settings))
        return self._secrets[1]

    def set_model_key(self, name: str, value: str) -> None:
        store = self.secret_store()
        if store is None:
            raise GatewayError("no secret store: set admin.secret_store in the config", status=409, code="conflict")
        store.put(name, value)
        self._rebuild()

    def _swap(self, runtime: Runtime) -> None:
        # One reference assignment: requests already running keep the snapshot they took.
        self.runtime = runtime
        self._publish_availability()
        live = runtime.config.live
        self.live.configure(live.subscriber_queue, live.max_subscribers, live.requests_sample_rate)
        self.feed.metrics_interval_s = live.metrics_interval_s
        self.feed.check_models()  # enable/disable and model changes reach the live feed at once

    def _count_reload(self, ok: bool) -> None:
        self.metrics.count_reload(ok)
        self.security.audit.record("config.reload", target=str(self.config_path), outcome="ok" if ok else "refused")
        if not ok:
            self.feed.alert(
                "reload_failed", "critical", "config reload refused; still serving the previous config (see the log)"
            )

    # -- admin ------------------------------------------------------------------------------------

    def add_model(self, model: ModelConfig) -> None:
        if model.name in self.runtime.models or model.name in self.runtime.routes:
            raise GatewayError(
                f"model {model.name!r} already exists",
                status=409,
                type="invalid_request_error",
                code="conflict",
            )
        self.overrides.added[model.name] = model
        try:
            self._rebuild()
        except Exception:
            del self.overrides.added[model.name]
            raise

    def change_model(self, name: str, enabled: bool | None = None, weight: float | None = None) -> None:
        """Switch a model on or off and/or set its routing weight (runtime overrides, one rebuild)."""
        if weight is not None:
            trial = ModelOverrides(
                self.overrides.added, self.overrides.enabled, {**self.overrides.weight, name: weight}
            )
            zeroed = zero_weight_routes(trial.apply(self.file_config), name)
            if zeroed:
                raise InvalidRequest(
                    f"weight {weight:g} would leave route(s) {', '.join(zeroed)} with every target at weight 0",
                    param="weight",
                )
            self.overrides.weight[name] = weight
        if enabled is not None:
            self.overrides.enabled[name] = enabled
        self._rebuild()

    # -- status -----------------------------------------------------------------------------------

    def model_health(self) -> dict[str, dict[str, object]]:
        circuits = self.router.circuits()
        out: dict[str, dict[str, object]] = {}
        for name, model in self.runtime.models.items():
            circuit, in_flight = circuits.get(name, ("closed", 0))
            problem = self.runtime.unusable.get(name)
            available = model.enabled and problem is None and circuit != "open"
            out[name] = {
                "enabled": model.enabled,
                "available": available,
                "circuit_state": circuit,
                "health": "healthy"
                if available and circuit == "closed"
                else ("degraded" if available else "unavailable"),
                "reason": problem
                or (None if model.enabled else "disabled")
                or (f"circuit {circuit}" if circuit != "closed" else None),
                "in_flight": in_flight,
            }
        return out

    # -- what the live feed reads (FeedSources) ------------------------------------------------------

    def live_summary(self) -> dict[str, Any]:
        self.backlog.run()  # settled figures: every answer sent is in them
        return self.stats.summary()

    def retry_in_s(self, retry_at: float | None) -> float | None:
        """Seconds until a circuit admits traffic again (router times are on its own clock)."""
        return None if retry_at is None else round(max(0.0, retry_at - self.clock.monotonic()), 3)

    def _publish_availability(self) -> None:
        self.metrics.refresh_models(self.model_health())
