"""A stand-in for a gateway pod's stats endpoint, with a fixed document (for status plumbing tests)."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@contextmanager
def stats_server(doc: dict[str, Any], budgets: dict[str, Any] | None = None) -> Iterator[tuple[int, dict[str, Any]]]:
    """Serve GET /api/v1/stats (and /api/v1/budgets) on 0.0.0.0:<free port>; yields (port, doc) --
    mutate doc to change it."""
    docs = {"/api/v1/stats": doc, "/api/v1/budgets": budgets}

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if docs.get(self.path) is None:
                self.send_error(404)
                return
            body = json.dumps(docs[self.path]).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("0.0.0.0", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1], doc
    finally:
        server.shutdown()
        server.server_close()


def endpoint_slice(ns: str, service: str, name: str, address: str, port: int) -> dict[str, Any]:
    """An EndpointSlice for `service` (what the EndpointSlice controller makes for a ready pod)."""
    return {
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {
            "name": name,
            "namespace": ns,
            "labels": {"kubernetes.io/service-name": service, "endpointslice.kubernetes.io/managed-by": "aimm-tests"},
        },
        "addressType": "IPv4",
        "ports": [{"name": "http", "port": port, "protocol": "TCP"}],
        "endpoints": [{"addresses": [address], "conditions": {"ready": True}}],
    }
