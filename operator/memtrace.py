"""Where the operator's memory is held, by allocation site: a debug hook, off by default.

With `AIMM_OPERATOR_MEMTRACE=DIR` in its environment the operator starts `tracemalloc` (frames:
`AIMM_OPERATOR_MEMTRACE_FRAMES`, default 12; 0 traces nothing) and, on every SIGUSR1, writes
`DIR/memtrace-<k>.txt`: the RSS against what holds it (glibc's heap in use and free, CPython's
small-object arenas and how full they are, the traced total), the heap growth since the previous
snapshot (the first: since start-up) by file:line and by traceback, and live objects by type. Send
SIGUSR1 before and after a burst to see what the burst left behind. Tracing slows the operator
several times and adds its own memory: never set in production.
"""

from __future__ import annotations

import asyncio
import ctypes
import gc
import logging
import os
import signal
import sys
import tempfile
import tracemalloc
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from aimm_operator import heap

log = logging.getLogger("aimm_operator.memtrace")

ENV_DIR = "AIMM_OPERATOR_MEMTRACE"
ENV_FRAMES = "AIMM_OPERATOR_MEMTRACE_FRAMES"
TOP = 40


def rss_mb() -> float:
    """The process's resident set (Linux /proc; 0 elsewhere)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


class _Mallinfo2(ctypes.Structure):
    _fields_ = [
        (name, ctypes.c_size_t)
        for name in (
            *("arena", "ordblks", "smblks", "hblks", "hblkhd"),
            *("usmblks", "fsmblks", "uordblks", "fordblks", "keepcost"),
        )
    ]


def malloc_stats() -> str:
    """glibc's heap over all its arenas (one per thread that allocated): in use, free, mmapped."""
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.mallinfo2.restype = _Mallinfo2
        m = libc.mallinfo2()
    except (OSError, AttributeError):
        return "glibc malloc: not available"
    mb = 1048576
    return (
        f"glibc malloc: heap {m.arena / mb:.1f} MB (in use {m.uordblks / mb:.1f} MB, free {m.fordblks / mb:.1f} MB), "
        f"mmapped {m.hblkhd / mb:.1f} MB in {m.hblks} blocks"
    )


def pymalloc_stats() -> str:
    """The summary of CPython's small-object allocator: arenas held against blocks in use."""
    with tempfile.TemporaryFile("w+") as tmp:
        saved = os.dup(2)
        sys.stderr.flush()
        try:
            os.dup2(tmp.fileno(), 2)
            sys._debugmallocstats()
        finally:
            os.dup2(saved, 2)
            os.close(saved)
        tmp.seek(0)
        text = tmp.read()
    keep = ("# arenas", "# bytes in", "# bytes lost", "Total")
    summary = "\n".join(line for line in text.splitlines() if line.startswith(keep))
    # CPython prints nothing when its allocator is wrapped (tracemalloc tracing, PYTHONMALLOC=malloc).
    return summary or "pymalloc: no statistics while tracemalloc traces (AIMM_OPERATOR_MEMTRACE_FRAMES=0 shows them)"


def type_counts(objects: list[object], top: int = TOP) -> list[tuple[str, int]]:
    """The most numerous live objects tracked by the garbage collector, by type."""
    return Counter(type(o).__qualname__ for o in objects).most_common(top)


def backlog(objects: list[object]) -> str:
    """asyncio tasks alive, and kopf's per-object event queues (one worker each) with what waits in them."""
    streams = [
        o for o in objects if type(o).__name__ == "Stream" and isinstance(getattr(o, "backlog", None), asyncio.Queue)
    ]
    queued = sum(o.backlog.qsize() for o in streams)  # type: ignore[attr-defined]
    return (
        f"asyncio tasks: {len(asyncio.all_tasks())}; kopf object streams: {len(streams)}, raw events queued: {queued}"
    )


def _filtered(snap: tracemalloc.Snapshot) -> tracemalloc.Snapshot:
    hidden = [tracemalloc.Filter(False, tracemalloc.__file__), tracemalloc.Filter(False, "<frozen *>")]
    return snap.filter_traces(hidden)


def _mb(size: int) -> str:
    return f"{size / 1048576:8.2f} MB"


def report(before: tracemalloc.Snapshot | None, after: tracemalloc.Snapshot | None, label: str) -> str:
    """The text of one dump: growth since `before` (or everything held, without one)."""
    traced, peak = tracemalloc.get_traced_memory()
    lines = [
        f"# {label}: RSS {rss_mb():.1f} MB, traced {traced / 1048576:.1f} MB (peak {peak / 1048576:.1f} MB)",
        malloc_stats(),
        pymalloc_stats(),
    ]
    before_trim = rss_mb()
    heap.trim()
    lines.insert(1, f"malloc_trim(0): RSS {before_trim:.1f} -> {rss_mb():.1f} MB")
    for key in ("lineno", "traceback") if after is not None else ():
        assert after is not None
        if before is None:
            stats = [(st.size, st.count, st.traceback) for st in after.statistics(key)]
        else:
            stats = [(st.size_diff, st.count_diff, st.traceback) for st in after.compare_to(before, key)]
        stats.sort(key=lambda st: -st[0])
        lines.append(f"\n## top {TOP} by {key} ({'growth' if before else 'held'})")
        for size, count, tb in stats[:TOP]:
            if key == "lineno":
                lines.append(f"{_mb(size)} {count:+9d} blocks  {tb[0].filename}:{tb[0].lineno}")
            else:
                lines.append(f"{_mb(size)} {count:+9d} blocks")
                lines.extend(f"        {f.filename}:{f.lineno}" for f in reversed(tb))
    objects = gc.get_objects()
    lines.insert(1, backlog(objects))
    lines.append(f"\n## live objects by type (gc, top {TOP})")
    lines.extend(f"{n:9d}  {name}" for name, n in type_counts(objects))
    del objects
    return "\n".join(lines) + "\n"


@dataclass
class MemTrace:
    out: Path
    last: tracemalloc.Snapshot | None = None
    dumps: int = 0

    def dump(self) -> Path:
        gc.collect()
        snap = _filtered(tracemalloc.take_snapshot()) if tracemalloc.is_tracing() else None
        self.dumps += 1
        path = self.out / f"memtrace-{self.dumps}.txt"
        path.write_text(report(self.last, snap, f"dump {self.dumps}"))
        self.last = snap
        log.warning("memtrace: wrote %s", path)
        return path


def install(loop: asyncio.AbstractEventLoop, env: dict[str, str] | None = None) -> MemTrace | None:
    """Start tracing and dump on SIGUSR1 when the environment asks for it; None otherwise."""
    env = dict(os.environ) if env is None else env
    directory = env.get(ENV_DIR)
    if not directory:
        return None
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    frames = int(env.get(ENV_FRAMES) or 12)
    if frames > 0 and not tracemalloc.is_tracing():  # 0: the allocator summaries only, at full speed
        tracemalloc.start(frames)
    trace = MemTrace(out)
    loop.add_signal_handler(signal.SIGUSR1, trace.dump)
    log.warning("memtrace: tracing allocations; SIGUSR1 writes %s/memtrace-<k>.txt", out)
    return trace
