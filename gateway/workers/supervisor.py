"""Pre-fork supervisor: N worker processes behind one port, restarted when they die.

Sockets: one listening socket per worker slot, all bound to the same port with SO_REUSEPORT,
so the kernel spreads new connections across the slots evenly (one shared socket lets
whichever process wakes first take most of them). The supervisor keeps every slot's socket
open: while a dead worker is being replaced, connections hashed to its slot wait in that
socket's backlog instead of being refused.

Signals (waited for synchronously, no handlers racing the loop): SIGTERM/SIGINT drain: the
workers get SIGTERM, stop accepting, finish in-flight requests and streams within the grace
period, and are killed after it; SIGHUP is forwarded (every worker re-reads its config now);
SIGCHLD reaps and restarts a worker that died, with a growing delay if it keeps dying at start.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field

log = logging.getLogger("aimm.gateway.workers")

WAITED = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGCHLD)
STABLE_AFTER_S = 5.0  # a worker that lived this long resets its slot's restart delay
MAX_RESTART_DELAY_S = 30.0
KILL_MARGIN_S = 5.0  # past the grace period, before SIGKILL

Spawn = Callable[[int, socket.socket], None]  # runs in the child; must not return


def bind_slots(host: str, port: int, count: int, backlog: int = 2048) -> list[socket.socket]:
    """`count` listening sockets on one port (port 0: the first one's OS-picked port)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sockets: list[socket.socket] = []
    for _ in range(count):
        s = socket.socket(family, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        s.bind((host, port))
        s.listen(backlog)
        s.set_inheritable(True)
        port = s.getsockname()[1]
        sockets.append(s)
    return sockets


@dataclass
class _Slot:
    sock: socket.socket
    pid: int = 0
    started: float = 0.0
    restart_at: float | None = None
    delay_s: float = 0.0


@dataclass
class Supervisor:
    sockets: list[socket.socket]
    spawn: Spawn
    grace_s: float
    slots: list[_Slot] = field(init=False)
    stopping: bool = field(default=False, init=False)

    def __post_init__(self) -> None:
        self.slots = [_Slot(s) for s in self.sockets]

    def run(self) -> int:
        signal.pthread_sigmask(signal.SIG_BLOCK, WAITED)
        for index in range(len(self.slots)):
            self._start(index)
        while not self.stopping:
            info = signal.sigtimedwait(WAITED, self._next_timeout())
            if info is not None:
                self._on_signal(info.si_signo)
            self._reap()
            self._restart_due()
        return self._drain()

    # -- workers --------------------------------------------------------------------------------

    def _start(self, index: int) -> None:
        slot = self.slots[index]
        pid = os.fork()
        if pid == 0:
            for other in self.slots:
                if other is not slot:
                    other.sock.close()
            self.spawn(index, slot.sock)
            os._exit(1)  # spawn must not return; never fall back into the supervisor's loop
        slot.pid, slot.started, slot.restart_at = pid, time.monotonic(), None
        log.info("worker %d started (pid %d)", index, pid)

    def _reap(self) -> None:
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            for index, slot in enumerate(self.slots):
                if slot.pid == pid:
                    self._on_exit(index, slot, status)

    def _on_exit(self, index: int, slot: _Slot, status: int) -> None:
        slot.pid = 0
        if self.stopping:
            return
        lived = time.monotonic() - slot.started
        slot.delay_s = 0.0 if lived >= STABLE_AFTER_S else min(MAX_RESTART_DELAY_S, max(0.5, slot.delay_s * 2))
        slot.restart_at = time.monotonic() + slot.delay_s
        log.warning(
            "worker %d died (%s) after %.1fs; restarting in %.1fs", index, _describe(status), lived, slot.delay_s
        )

    def _restart_due(self) -> None:
        now = time.monotonic()
        for index, slot in enumerate(self.slots):
            if not self.stopping and slot.pid == 0 and slot.restart_at is not None and slot.restart_at <= now:
                self._start(index)

    def _next_timeout(self) -> float:
        due = [s.restart_at for s in self.slots if s.pid == 0 and s.restart_at is not None]
        return max(0.01, min(due) - time.monotonic()) if due else 1.0

    # -- signals and shutdown ---------------------------------------------------------------------

    def _on_signal(self, signo: int) -> None:
        if signo in (signal.SIGTERM, signal.SIGINT):
            log.info("%s: draining %d workers (grace %.0fs)", signal.Signals(signo).name, len(self.slots), self.grace_s)
            self.stopping = True
        elif signo == signal.SIGHUP:
            self._signal_all(signal.SIGHUP)

    def _signal_all(self, signo: int) -> None:
        for slot in self.slots:
            if slot.pid:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(slot.pid, signo)

    def _drain(self) -> int:
        for slot in self.slots:
            slot.sock.close()  # nothing new queues behind workers that are leaving
        self._signal_all(signal.SIGTERM)
        deadline = time.monotonic() + self.grace_s + KILL_MARGIN_S
        while any(s.pid for s in self.slots) and time.monotonic() < deadline:
            signal.sigtimedwait([signal.SIGCHLD], 0.1)
            self._reap()
        if any(s.pid for s in self.slots):
            log.warning("workers still running after the grace period: killing them")
            self._signal_all(signal.SIGKILL)
            while any(s.pid for s in self.slots):
                self._reap()
                time.sleep(0.01)
        return 0


def _describe(status: int) -> str:
    if os.WIFSIGNALED(status):
        return f"signal {signal.Signals(os.WTERMSIG(status)).name}"
    return f"exit code {os.waitstatus_to_exitcode(status)}"
