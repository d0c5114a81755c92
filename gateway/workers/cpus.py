"""How many workers a gateway should run: the container's CPU limit, else the cores it may use.

More than one worker needs shared state (`state.redis`): with in-process state every worker
would count budgets, rate limits and keys on its own, so a pod of N workers could spend N times
a budget. Without it the gateway runs one worker (docs/workers.md).
"""

from __future__ import annotations

import logging
import math
import os
from pathlib import Path

from aimm_gateway.config import ConfigError

log = logging.getLogger("aimm.gateway.workers")

CGROUP_ROOT = Path("/sys/fs/cgroup")


def cgroup_cpu_limit(root: Path = CGROUP_ROOT, proc_cgroup: Path = Path("/proc/self/cgroup")) -> float | None:
    """The CPU limit in cores from cgroup v2 `cpu.max` or v1 `cpu.cfs_quota_us`; None if unlimited."""
    for directory in _cgroup_dirs(root, proc_cgroup):
        v2 = directory / "cpu.max"
        if v2.is_file():
            quota, _, period = v2.read_text().strip().partition(" ")
            if quota != "max":
                return int(quota) / int(period or "100000")
            continue
        v1_quota = directory / "cpu.cfs_quota_us"
        if v1_quota.is_file():
            quota_us = int(v1_quota.read_text().strip())
            if quota_us > 0:
                return quota_us / int((directory / "cpu.cfs_period_us").read_text().strip())
    return None


def _cgroup_dirs(root: Path, proc_cgroup: Path) -> list[Path]:
    """The process's own cgroup directory first (v2, then v1 `cpu`), then the mount's root."""
    found: list[Path] = []
    try:
        lines = proc_cgroup.read_text().splitlines()
    except OSError:
        lines = []
    for line in lines:
        _, controllers, path = line.split(":", 2)
        rel = path.lstrip("/")
        if controllers == "":
            found.append(root / rel)
        elif "cpu" in controllers.split(","):
            for mount in ("cpu,cpuacct", "cpu", "cpuacct,cpu"):
                found.append(root / mount / rel)
    found += [root, root / "cpu", root / "cpu,cpuacct"]
    return found


def usable_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def worker_count(flag: int | None, shared_state: bool) -> int:
    """`--workers` if given, else `default_workers()`, held to 1 without shared state.

    An explicit `--workers N>1` without `state.redis` is refused (the caller asked for something
    that would break exact budgets); the operator's `AIMM_WORKERS` and the core count are
    defaults, so they fall back to one worker with a log line saying why."""
    if flag is not None and flag < 1:
        raise ConfigError(f"--workers must be at least 1, got {flag}")
    if flag is not None and flag > 1 and not shared_state:
        raise ConfigError(
            f"--workers {flag} needs shared state: without state.redis each worker would enforce "
            "budgets, rate limits and API keys on its own; set state.redis or use --workers 1"
        )
    wanted = flag if flag is not None else default_workers()
    if wanted > 1 and not shared_state:
        log.info("one worker instead of %d: in-process state is per process (set state.redis for more)", wanted)
        return 1
    return wanted


def default_workers() -> int:
    """`AIMM_WORKERS` if set, else the CPU limit rounded up, else the cores this process may run on.

    A fractional limit (1.5 cores) rounds up: the last worker shares a core rather than idling
    half a core of quota; never more workers than usable cores.
    """
    given = os.environ.get("AIMM_WORKERS", "").strip()
    if given:
        return max(1, int(given))
    cores = usable_cores()
    limit = cgroup_cpu_limit()
    if limit is None:
        return cores
    return max(1, min(cores, math.ceil(limit)))
