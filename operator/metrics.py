"""The operator's own Prometheus metrics, served on --metrics-port.

One registry per operator run, owned by its OperatorContext (no process-global collectors), so two
operators in one process (tests) never share counts.
"""

from __future__ import annotations

import threading
from wsgiref.simple_server import WSGIServer

from prometheus_client import CollectorRegistry, Counter, Histogram, start_http_server


class OperatorMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.reconciles = Counter(
            "aimm_operator_reconciles", "Namespace reconciles by result (ok, error)", ["result"], registry=r
        )
        self.reconcile_seconds = Histogram(
            "aimm_operator_reconcile_duration_seconds", "Duration of one namespace reconcile", registry=r
        )
        self.status_writes = Counter("aimm_operator_status_writes", "Status subresource writes", registry=r)
        self.retries = Counter(
            "aimm_operator_retries", "Reconciles scheduled again with backoff after a failure", registry=r
        )
        self.stats_polls = Counter(
            "aimm_operator_stats_polls", "Gateway stats polls by result (ok, error)", ["result"], registry=r
        )
        self.events = Counter("aimm_operator_events", "Kubernetes Events sent to the API", registry=r)
        self._server: WSGIServer | None = None
        self._thread: threading.Thread | None = None

    def serve(self, port: int, addr: str = "0.0.0.0") -> int:  # all interfaces: Prometheus scrapes from other pods
        """Serve /metrics on `port` (0 = a free one, for tests); returns the bound port."""
        self._server, self._thread = start_http_server(port, addr, registry=self.registry)
        return int(self._server.server_port)

    def close(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
