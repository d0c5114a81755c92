"""Real `aimm gateway serve` processes for the fleet and shutdown tests (each on a free port)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import yaml

from tests.backing import free_port

AIMM = str(Path(sys.executable).parent / "aimm")


@dataclass
class GatewayProcess:
    proc: subprocess.Popen[bytes]
    port: int
    log: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def terminate(self, timeout: float = 30) -> int:
        """SIGTERM (what Kubernetes sends) and wait for a clean exit."""
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)


def start_gateway_process(
    config: dict[str, Any], workdir: Path, env: dict[str, str], name: str = "gw"
) -> GatewayProcess:
    path = workdir / f"{name}.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    port = free_port()
    log = workdir / f"{name}.log"
    proc = subprocess.Popen(
        [AIMM, "gateway", "serve", "--config", str(path), "--port", str(port)],
        env={**os.environ, **env},
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
    )
    gw = GatewayProcess(proc, port, log)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"gateway {name} exited: {log.read_text()[-2000:]}")
        try:
            if httpx.get(f"{gw.url}/health", timeout=0.5).status_code == 200:
                return gw
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    gw.kill()
    raise TimeoutError(f"gateway {name} did not start: {log.read_text()[-2000:]}")
