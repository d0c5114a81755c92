"""A/B: the gateway of another commit, run from its own source next to the current one.

`git archive <ref> gateway` is unpacked into the bench's temporary directory and put first on
PYTHONPATH as `aimm_gateway` (ahead of the editable install's finder), so the same mock
upstreams, load generator and pinning measure both in one run, interleaved.
"""

from __future__ import annotations

import io
import subprocess
import tarfile
from pathlib import Path

import aimm_gateway

REPO = Path(aimm_gateway.__file__).resolve().parent.parent


def resolve(ref: str) -> str:
    out = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", ref], capture_output=True, text=True)
    if out.returncode != 0:
        raise SystemExit(f"aimm bench --ab: unknown git ref {ref!r}: {out.stderr.strip()}")
    return out.stdout.strip()


def checkout_env(ref: str, workdir: Path) -> dict[str, str]:
    """Environment that makes `python -m aimm_gateway.cli` run the gateway as it was at `ref`."""
    dest = workdir / f"ab-{ref}"
    pkgs = dest / "pkgs"
    if pkgs.exists():  # the same ref twice (e.g. with two upstream clients): unpacked once
        return {"PYTHONPATH": str(pkgs)}
    archive = subprocess.run(
        ["git", "-C", str(REPO), "archive", "--format=tar", ref, "gateway"], capture_output=True, check=True
    ).stdout
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(dest, filter="data")
    pkgs.mkdir()
    (pkgs / "aimm_gateway").symlink_to(dest / "gateway")
    return {"PYTHONPATH": str(pkgs)}
