"""Real backing servers for tests: `redis-server` and PostgreSQL (initdb + pg_ctl), in temp dirs.

Each binds a free loopback port, is started once per test session by the fixtures in
tests/conftest.py, and is stopped (and its directory removed) at the end.
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from aimm_gateway.bench.procs import free_port


def _wait_port(port: int, proc: subprocess.Popen[bytes], what: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with {proc.returncode} during start-up")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"{what} did not listen on port {port} within {timeout}s")


@dataclass
class RedisServer:
    port: int
    proc: subprocess.Popen[bytes]
    workdir: Path

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)

    def start_again(self) -> None:
        """Restart on the same port (tests of 'Redis came back')."""
        self.proc = _spawn_redis(self.port, self.workdir)


def _spawn_redis(port: int, workdir: Path) -> subprocess.Popen[bytes]:
    binary = shutil.which("redis-server")
    if binary is None:
        raise RuntimeError("redis-server is not installed (make test installs it: hack/system-deps.sh)")
    args = [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
    args += ["--dir", str(workdir), "--protected-mode", "no"]
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _wait_port(port, proc, "redis-server")
    return proc


def start_redis() -> RedisServer:
    workdir = Path(tempfile.mkdtemp(prefix="aimm-redis-"))
    port = free_port()
    return RedisServer(port, _spawn_redis(port, workdir), workdir)


def _pg_bin(name: str) -> str:
    found = shutil.which(name) or next(iter(sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), reverse=True)), None)
    if found is None:
        raise RuntimeError(f"{name} not found: install Debian's postgresql package (hack/system-deps.sh)")
    return found


@dataclass
class PostgresServer:
    port: int
    datadir: Path
    runas: list[str]

    @property
    def dsn(self) -> str:
        return f"postgresql://aimm@127.0.0.1:{self.port}/postgres"

    def stop(self) -> None:
        subprocess.run(
            [*self.runas, _pg_bin("pg_ctl"), "-D", str(self.datadir), "-m", "immediate", "-w", "stop"],
            check=False,
            capture_output=True,
        )
        shutil.rmtree(self.datadir.parent, ignore_errors=True)


def _as_pg_user(root: Path) -> list[str]:
    """PostgreSQL refuses to run as root: as root, hand the directory to `postgres` and run as it."""
    if os.geteuid() != 0:
        return []
    shutil.chown(root, "postgres", "postgres")
    return ["runuser", "-u", "postgres", "--"]


def start_postgres() -> PostgresServer:
    root = Path(tempfile.mkdtemp(prefix="aimm-pg-"))
    datadir = root / "data"
    env = {**os.environ, "LC_ALL": "C"}
    runas = _as_pg_user(root)
    subprocess.run(
        [*runas, _pg_bin("initdb"), "-D", str(datadir), "-U", "aimm", "--auth=trust", "-E", "UTF8", "--no-sync"],
        check=True,
        capture_output=True,
        env=env,
    )
    port = free_port()
    options = f"-p {port} -k {root} -c listen_addresses=127.0.0.1 -c fsync=off -c full_page_writes=off"
    subprocess.run(
        [
            *runas,
            _pg_bin("pg_ctl"),
            "-D",
            str(datadir),
            "-l",
            str(root / "log"),
            "-o",
            options,
            "-w",
            "-t",
            "30",
            "start",
        ],
        check=True,
        capture_output=True,
        env=env,
    )
    return PostgresServer(port, datadir, runas)
