"""No function over 80 lines (the team's rule) anywhere in gateway/, operator/ and the Python SDK.

It runs `hack/long_functions.py`, the same check anyone can run over the whole tree.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CHECKED = ["gateway", "operator", "sdk/python/aimm_client"]


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
