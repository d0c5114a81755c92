"""No function over 80 lines (the team's rule) in the folders this test covers.

It runs `hack/long_functions.py`, the same check anyone can run over the whole tree; the
list below grows as folders are brought under the limit, until it is all of gateway/ and operator/.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CHECKED = [
    "gateway/providers",
    "gateway/mock",
    "gateway/inbound",
    "gateway/canonical.py",
    "gateway/pipeline.py",
    "gateway/stages",
    "gateway/attempts",
    "gateway/routing",
    "gateway/api",
    "gateway/state",
    "gateway/store",
    "gateway/budget",
    "gateway/cache",
    "gateway/analytics",
    "gateway/bench/cost.py",
    "gateway/reload.py",
    "operator",
]


def test_no_function_over_80_lines() -> None:
    script = ROOT / "hack" / "long_functions.py"
    done = subprocess.run(
        [sys.executable, "-P", str(script), "--max", "80", *CHECKED], cwd=ROOT, capture_output=True, text=True
    )
    assert done.returncode == 0, f"functions over 80 lines:\n{done.stdout}{done.stderr}"


def test_the_check_finds_a_long_function(tmp_path: Path) -> None:
    long_one = tmp_path / "long.py"
    long_one.write_text("def f():\n" + "    x = 1\n" * 81)
    script = ROOT / "hack" / "long_functions.py"
    done = subprocess.run([sys.executable, "-P", str(script), str(long_one)], capture_output=True, text=True)
    assert done.returncode == 1 and "f (82 lines)" in done.stdout
