"""Hardening: header-read and idle timeouts (raw sockets), security headers, CORS, TLS reload, client certs."""

from __future__ import annotations

import datetime
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import uvicorn
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from aimm_gateway.app import create_app
from aimm_gateway.config import parse_config
from aimm_gateway.security.server_options import CertReloader, uvicorn_options
from aimm_gateway.service import Gateway
from tests.backing import free_port
from tests.gateway.conftest import RunningGateway, base_config

Start = Callable[[dict[str, Any]], RunningGateway]


@contextmanager
def serve(config: dict[str, Any]) -> Iterator[tuple[int, Gateway, uvicorn.Config]]:
    """The gateway under uvicorn with the same options `aimm gateway serve` uses."""
    gateway = Gateway(parse_config(config))
    port = free_port()
    options = uvicorn_options(gateway.file_config.hardening)
    cfg = uvicorn.Config(create_app(gateway), host="127.0.0.1", port=port, log_level="warning", **options)
    cfg.load()
    if cfg.ssl is not None and gateway.file_config.hardening.tls is not None:
        gateway.tls_reloader = CertReloader(cfg.ssl, gateway.file_config.hardening.tls)
    server = uvicorn.Server(cfg)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive()
        time.sleep(0.02)
    try:
        yield port, gateway, cfg
    finally:
        server.should_exit = True
        thread.join(10)


def _closed_within(sock: socket.socket, seconds: float) -> float | None:
    """Seconds until the server closed the connection, or None if it stayed open."""
    sock.settimeout(seconds)
    started = time.monotonic()
    try:
        while True:
            data = sock.recv(65536)
            if not data:
                return time.monotonic() - started
    except TimeoutError:
        return None


def test_connection_that_never_finishes_its_headers_is_closed() -> None:
    config = {
        "models": [{"name": "m", "provider": "mock"}],
        "hardening": {"header_timeout_s": 1.0, "idle_timeout_s": 1.0},
    }
    with serve(config) as (port, _, _):
        silent = socket.create_connection(("127.0.0.1", port))
        slow = socket.create_connection(("127.0.0.1", port))
        slow.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n")  # and never the blank line
        time.sleep(0.6)
        slow.sendall(b"X-Trickle: 1\r\n")  # trickling more header bytes does not reset the clock
        assert _closed_within(slow, 4.0) is not None
        assert _closed_within(silent, 4.0) is not None
        # A keep-alive connection idle after a complete exchange is closed too.
        idle = socket.create_connection(("127.0.0.1", port))
        idle.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        first = idle.recv(65536)
        assert first.startswith(b"HTTP/1.1 200")
        assert _closed_within(idle, 4.0) is not None
        for s in (silent, slow, idle):
            s.close()


def _get_health(sock: socket.socket) -> bytes:
    """One whole keep-alive exchange: head and body (the server may write them separately)."""
    sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
    answer = b""
    while b"\r\n\r\n" not in answer:
        answer += sock.recv(65536)
    head, _, body = answer.partition(b"\r\n\r\n")
    length = int(
        next(line.split(b":")[1] for line in head.split(b"\r\n") if line.lower().startswith(b"content-length"))
    )
    while len(body) < length:
        body += sock.recv(65536)
    return answer


def test_keep_alive_request_whose_headers_stall_is_closed_by_the_connections_one_timer() -> None:
    """The header timer is one per connection: set going by the first request, it must close the
    connection at the deadline of a later request that stalls (re-armed, not at the first
    request's), and must not close one whose later requests complete (a lapsed deadline)."""
    config = {
        "models": [{"name": "m", "provider": "mock"}],
        "hardening": {"header_timeout_s": 1.0, "idle_timeout_s": 30.0},
    }
    with serve(config) as (port, _, _):
        stalled = socket.create_connection(("127.0.0.1", port))
        assert _get_health(stalled).startswith(b"HTTP/1.1 200")
        time.sleep(0.5)  # the timer the first request armed fires in ~0.5 s
        stalled.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n")  # and never the blank line
        closed_after = _closed_within(stalled, 4.0)
        assert closed_after is not None and closed_after >= 0.8  # its own deadline, 1 s after it began
        busy = socket.create_connection(("127.0.0.1", port))
        for _ in range(7):  # complete exchanges for ~1.75 s: the timer fires between them and lapses
            assert _get_health(busy).startswith(b"HTTP/1.1 200")
            time.sleep(0.25)
        assert _get_health(busy).startswith(b"HTTP/1.1 200")  # still open: never stalled
        for s in (busy, stalled):
            s.close()


def test_body_trickled_slower_than_the_body_timeout_gets_408_and_a_closed_connection() -> None:
    config = {
        "models": [{"name": "m", "provider": "mock"}],
        "auth": {"enabled": False},
        "hardening": {"body_timeout_s": 1.0},
    }
    body = b'{"model": "m", "messages": [{"role": "user", "content": "hi"}]}'
    with serve(config) as (port, _, _):
        sock = socket.create_connection(("127.0.0.1", port))
        head = "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        sock.sendall((head + f"Content-Length: {len(body)}\r\n\r\n").encode() + body[:5])
        sock.settimeout(0.25)
        answer = b""
        started = time.monotonic()
        for byte in body[5:]:  # one byte every 0.25 s: the body would take ~15 s
            sock.sendall(bytes([byte]))
            try:
                answer += sock.recv(65536)
            except TimeoutError:
                continue
            if b"\r\n\r\n" in answer:
                break
        elapsed = time.monotonic() - started
        assert answer.startswith(b"HTTP/1.1 408"), answer[:200]
        assert elapsed < 5.0
        assert b"connection: close" in answer.lower()
        payload = answer.split(b"\r\n\r\n", 1)[1]
        while len(payload) < 20:
            payload += sock.recv(65536)
        error = orjson.loads(payload)["error"]
        assert error["code"] == "request_timeout" and error["type"] == "invalid_request_error"
        assert _closed_within(sock, 3.0) is not None  # the server stops reading the trickle
        sock.close()


def test_security_headers_and_cors_off_by_default(start_gateway: Start) -> None:
    gw = start_gateway(base_config([{"name": "m", "provider": "mock"}]))
    with gw.client() as c:
        resp = c.get("/v1/models", headers={"origin": "https://evil.example"})
        pre = c.options(
            "/v1/chat/completions", headers={"origin": "https://evil.example", "access-control-request-method": "POST"}
        )
    assert resp.headers["x-content-type-options"] == "nosniff" and resp.headers["x-frame-options"] == "DENY"
    assert resp.headers["cache-control"] == "no-store" and "access-control-allow-origin" not in resp.headers
    assert "access-control-allow-origin" not in pre.headers


def test_cors_allow_list(start_gateway: Start) -> None:
    config = base_config(
        [{"name": "m", "provider": "mock"}], hardening={"cors": {"allow_origins": ["https://app.example"]}}
    )
    gw = start_gateway(config)
    with httpx.Client(base_url=gw.url, timeout=30) as c:
        ok = c.options(
            "/v1/chat/completions",
            headers={
                "origin": "https://app.example",
                "access-control-request-method": "POST",
                "access-control-request-headers": "authorization,content-type",
            },
        )
        bad = c.options(
            "/v1/chat/completions", headers={"origin": "https://evil.example", "access-control-request-method": "POST"}
        )
    assert ok.status_code == 200 and ok.headers["access-control-allow-origin"] == "https://app.example"
    assert bad.status_code == 400 and "access-control-allow-origin" not in bad.headers


def _cert(
    path: Path, name: str, issuer: tuple[Any, x509.Name] | None = None, ca: bool = False
) -> tuple[Any, x509.Certificate]:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    signer_key, issuer_name = issuer if issuer is not None else (key, subject)
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if not ca:
        builder = builder.add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(__import__("ipaddress").ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
    cert = builder.sign(signer_key, hashes.SHA256())
    path.with_suffix(".crt").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    path.with_suffix(".key").write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return key, cert


def _served_serial(port: int, ca_file: Path, client: tuple[Path, Path] | None = None) -> int:
    ctx = ssl.create_default_context(cafile=str(ca_file))
    if client is not None:
        ctx.load_cert_chain(str(client[0]), str(client[1]))
    with socket.create_connection(("127.0.0.1", port)) as raw, ctx.wrap_socket(raw, server_hostname="localhost") as tls:
        tls.sendall(b"GET /health HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        assert tls.recv(4096).startswith(b"HTTP/1.1 200")
        der = tls.getpeercert(binary_form=True)
    assert der is not None
    return x509.load_der_x509_certificate(der).serial_number


def test_tls_reloads_changed_certificate_and_requires_client_cert(tmp_path: Path) -> None:
    ca_key, ca = _cert(tmp_path / "ca", "test-ca", ca=True)
    issuer = (ca_key, ca.subject)
    _, first = _cert(tmp_path / "server", "localhost", issuer)
    _cert(tmp_path / "client", "client-1", issuer)
    tls = {
        "cert_file": str(tmp_path / "server.crt"),
        "key_file": str(tmp_path / "server.key"),
        "client_ca_file": str(tmp_path / "ca.crt"),
        "require_client_cert": True,
        "reload_interval_s": 0.2,
    }
    client = (tmp_path / "client.crt", tmp_path / "client.key")
    with serve({"models": [{"name": "m", "provider": "mock"}], "hardening": {"tls": tls}}) as (port, _, _):
        assert _served_serial(port, tmp_path / "ca.crt", client) == first.serial_number
        with pytest.raises((ssl.SSLError, ConnectionResetError, AssertionError)):
            _served_serial(port, tmp_path / "ca.crt")  # no client certificate: refused
        time.sleep(0.05)
        _, second = _cert(tmp_path / "server", "localhost", issuer)  # rotated on disk (e.g. cert-manager)
        deadline = time.monotonic() + 5
        while _served_serial(port, tmp_path / "ca.crt", client) != second.serial_number:
            assert time.monotonic() < deadline, "the new certificate was not picked up"
            time.sleep(0.1)
