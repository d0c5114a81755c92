"""The Go checkers of hack/gotools/ (kindcheck, kstatuscheck), built once and cached by
hack/gotools.sh (a warm run only checks a stamp)."""

from __future__ import annotations

import functools
import subprocess
from pathlib import Path

from tests.install.paths import REPO


@functools.cache
def gotools_dir() -> Path:
    res = subprocess.run(["bash", "hack/gotools.sh"], cwd=REPO, capture_output=True, text=True, timeout=1800)
    assert res.returncode == 0, f"hack/gotools.sh failed:\n{res.stderr[-3000:]}"
    return Path(res.stdout.strip().splitlines()[-1])


def gotool(name: str) -> str:
    path = gotools_dir() / name
    assert path.exists(), f"{name} missing from {path.parent}"
    return str(path)
