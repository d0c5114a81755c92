"""A test process that outlives SIGTERM is killed and explained: its Python stack and its log's end."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from tests.servers import stopped_or_why

STUBBORN = """
import signal, time
signal.signal(signal.SIGTERM, signal.SIG_IGN)
print("ready", flush=True)
def waiting_for_something_that_never_comes():
    time.sleep(60)
waiting_for_something_that_never_comes()
"""


def _started(args: list[str], log: Path) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(args, stdout=log.open("w"), stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 20
    while "ready" not in log.read_text():
        assert time.monotonic() < deadline and proc.poll() is None
        time.sleep(0.05)
    return proc


def test_a_process_ignoring_sigterm_is_killed_with_its_stack_and_log(tmp_path: Path) -> None:
    log = tmp_path / "stubborn.log"
    proc = _started([sys.executable, "-c", STUBBORN], log)
    proc.terminate()
    why = stopped_or_why(proc, log, grace_s=0.5)
    assert proc.returncode == -9  # killed, not left behind
    assert why is not None and f"pid {proc.pid} still running 0.5 s after SIGTERM" in why
    assert "waiting_for_something_that_never_comes" in why  # the stack says where it was stuck
    assert "--- log end:\nready" in why


def test_a_process_that_stops_is_not_explained(tmp_path: Path) -> None:
    log = tmp_path / "quick.log"
    proc = _started([sys.executable, "-c", "import time; print('ready', flush=True); time.sleep(60)"], log)
    proc.terminate()
    assert stopped_or_why(proc, log, grace_s=5) is None
    assert proc.returncode == -15
