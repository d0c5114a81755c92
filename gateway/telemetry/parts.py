"""The process's telemetry parts: the tracer provider (made on first use) and the access log,
handed to the telemetry stage per config snapshot (None when switched off). The access log
batches its stdout lines through `backlog` (the Gateway's; none given: one of its own)."""

from __future__ import annotations

from typing import TYPE_CHECKING, TextIO

from aimm_gateway.backlog import Backlog
from aimm_gateway.config import ObservabilitySettings
from aimm_gateway.telemetry.access_log import AccessLog

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider

    from aimm_gateway.telemetry.tracing import Tracing


class Telemetry:
    def __init__(
        self,
        stream: TextIO | None = None,
        tracer_provider: TracerProvider | None = None,
        backlog: Backlog | None = None,
    ) -> None:
        self._stream = stream
        self._backlog = backlog if backlog is not None else Backlog()
        self._provider = tracer_provider  # tests pass one with an in-memory exporter
        self._tracing: Tracing | None = None
        self._logs: dict[float, AccessLog] = {}

    def tracing(self, settings: ObservabilitySettings) -> Tracing | None:
        if not settings.tracing.enabled:
            return None
        if self._tracing is None:
            # Imported only when tracing is on: the SDK costs nothing to a gateway that never traces.
            from aimm_gateway.telemetry.tracing import Tracing, provider_from_env

            self._provider = self._provider or provider_from_env()
            if self._provider is None:  # OTEL_SDK_DISABLED=true
                return None
            self._tracing = Tracing(self._provider)
        return self._tracing

    def access_log(self, settings: ObservabilitySettings) -> AccessLog | None:
        cfg = settings.access_log
        if not cfg.enabled:
            return None
        found = self._logs.get(cfg.sample_rate)
        if found is None:
            found = self._logs[cfg.sample_rate] = AccessLog(cfg.sample_rate, self._stream, backlog=self._backlog)
        return found

    def shutdown(self) -> None:
        """Flush spans still buffered for export, and access-log lines not yet written."""
        for log in self._logs.values():
            log.flush()
        if self._provider is not None:
            self._provider.shutdown()
