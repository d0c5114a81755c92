"""The prometheus and promtool binaries, built from the Prometheus Go module by hack/prometheus.sh
(cached per machine; the warm path only checks a stamp)."""

from __future__ import annotations

import functools
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


@functools.cache
def bin_dir() -> Path:
    res = subprocess.run(
        ["bash", str(REPO / "hack" / "prometheus.sh")], capture_output=True, text=True, timeout=2400, check=False
    )
    assert res.returncode == 0, f"hack/prometheus.sh failed:\n{res.stderr[-4000:]}"
    return Path(res.stdout.strip().splitlines()[-1])


def promtool(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(bin_dir() / "promtool"), *args], capture_output=True, text=True, timeout=120, cwd=cwd, check=False
    )
