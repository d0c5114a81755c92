"""The parts `aimm bench` is built from: nginx as the reference proxy, and the A/B checkout."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import httpx

from aimm_gateway.bench.ab import checkout_env, resolve
from aimm_gateway.bench.nginx import nginx_proxy
from aimm_gateway.mock.faults import FaultSettings
from aimm_gateway.mock.server import create_mock_app
from tests.servers import run_asgi_app


def test_nginx_proxies_requests_and_streams_to_the_mock(tmp_path: Path) -> None:
    with run_asgi_app(create_mock_app("openai", FaultSettings(stream_chunks=5))) as upstream:
        upstream_port = int(upstream.rsplit(":", 1)[1])
        with nginx_proxy(tmp_path, upstream_port) as (url, _pid):
            chat = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
            reply = httpx.post(f"{url}/v1/chat/completions", json=chat, timeout=10)
            assert reply.status_code == 200 and reply.json()["object"] == "chat.completion"
            with httpx.stream("POST", f"{url}/v1/chat/completions", json={**chat, "stream": True}, timeout=10) as s:
                events = [line for line in s.iter_lines() if line.startswith("data: ")]
            assert events[-1] == "data: [DONE]" and len(events) == 5 + 3


def test_ab_checkout_runs_that_commit_gateway(tmp_path: Path) -> None:
    env = checkout_env("HEAD", tmp_path)
    out = subprocess.run(
        [sys.executable, "-c", "import aimm_gateway.cli, sys; print(aimm_gateway.cli.__file__)"],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert out.startswith(str(tmp_path)), out  # the archived copy, not this working tree
    assert len(resolve("HEAD")) >= 7
