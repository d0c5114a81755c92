"""nginx `proxy_pass` in front of the mock upstream: the C reference the gateway is measured against.

One worker process, keep-alive to the upstream, no buffering (streams pass through as they
come), no access log: the least a proxy can do per request, on the same core as the gateway.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from aimm_gateway.bench.procs import GATEWAY_CPU, children, free_port, pinned, process

NGINX = "/usr/sbin/nginx"


def have_nginx() -> bool:
    return Path(NGINX).exists() or shutil.which("nginx") is not None


def nginx_conf(prefix: Path, listen_port: int, upstream_port: int) -> str:
    user = "user root;\n" if os.geteuid() == 0 else ""  # as root, workers would drop to `nobody`
    temp = "\n".join(
        f"    {kind}_temp_path {prefix}/{kind};" for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    return f"""{user}worker_processes 1;
daemon off;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log warn;
events {{ worker_connections 8192; }}
http {{
    access_log off;
{temp}
    upstream mock {{ server 127.0.0.1:{upstream_port}; keepalive 256; }}
    server {{
        listen 127.0.0.1:{listen_port} backlog=4096;
        location / {{
            proxy_pass http://mock;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_buffering off;
        }}
    }}
}}
"""


@contextmanager
def nginx_proxy(workdir: Path, upstream_port: int) -> Iterator[tuple[str, int]]:
    """nginx proxying to the mock, pinned like the gateway; yields its base URL and master pid."""
    prefix = workdir / "nginx"
    prefix.mkdir(exist_ok=True)
    port = free_port()
    conf = prefix / "nginx.conf"
    conf.write_text(nginx_conf(prefix, port, upstream_port))
    binary = NGINX if Path(NGINX).exists() else "nginx"
    url = f"http://127.0.0.1:{port}"
    args = pinned(GATEWAY_CPU, [binary, "-p", str(prefix), "-e", str(prefix / "error.log"), "-c", str(conf)])
    with process(args, f"{url}/v1/models", log=prefix / "stdout.log") as proc:
        yield url, proc.pid


def worker_pid(master: int) -> int:
    """nginx's one worker process: the process that does the proxying (its CPU is what we compare)."""
    workers = children(master)
    return workers[0] if workers else master
