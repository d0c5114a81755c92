"""The README's "On Kubernetes" section, run as written, in a fresh clone, against the real API
server with the operator running: every command in its code block, in order, nothing else.

`make image` runs first in the clone, as the README says the image comes from it; it is cached
by the hash of its inputs, so on a machine that has built it this is a check, not a build. It is
skipped (with the reason) only where buildah cannot run. helm and kubectl are the binaries the
test harness uses, on PATH, with KUBECONFIG pointing at the harness' API server.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
from pathlib import Path

import pytest

from tests.install.image import BUILD_TIMEOUT, why_buildah_cannot_run
from tests.install.paths import REPO
from tests.k8s_harness import ControlPlane
from tests.operator.kubeapi import Api, wait_for


def readme_kubernetes_commands() -> list[str]:
    text = (REPO / "README.md").read_text()
    section = text.split("\n## On Kubernetes\n", 1)[1].split("\n## ", 1)[0]
    block = re.search(r"```bash\n(.*?)```", section, re.S)
    assert block, "no bash block in the README's Kubernetes section"
    commands = [line.split("#", 1)[0].strip() for line in block.group(1).splitlines()]
    return [c for c in commands if c]


def test_readme_section_is_what_this_test_runs() -> None:
    assert [shlex.split(c)[0] for c in readme_kubernetes_commands()] == ["helm", "kubectl", "kubectl"]


def test_fresh_clone_make_image_then_readme_kubernetes_section(
    control_plane: ControlPlane, api: Api, running, tmp_path: Path
) -> None:
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", "--no-hardlinks", str(REPO), str(clone)], check=True, timeout=120)
    # A user's shell, not a recursive make (under `make test`, make would announce directories).
    env = {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MAKELEVEL", "MFLAGS")}
    env["KUBECONFIG"] = str(control_plane.kubeconfig_path)
    env["PATH"] = f"{control_plane.bin_dir}{os.pathsep}{env['PATH']}"

    reason = why_buildah_cannot_run()
    if reason is None:
        res = subprocess.run(
            ["make", "image"], cwd=clone, env=env, capture_output=True, text=True, timeout=BUILD_TIMEOUT
        )
        assert res.returncode == 0, res.stderr[-3000:]
        assert res.stdout.strip().splitlines()[-1] == "ghcr.io/aimm/ai-multimodel:0.1.0"

    outputs = []
    for command in readme_kubernetes_commands():
        res = subprocess.run(shlex.split(command), cwd=clone, env=env, capture_output=True, text=True, timeout=180)
        assert res.returncode == 0, f"{command}\n{res.stdout}\n{res.stderr}"
        outputs.append(res.stdout)
    listed = {line.split()[0] for line in outputs[-1].splitlines()[1:]}
    assert {"gpt-4o-mini", "claude-sonnet"} <= listed, outputs[-1]
    # The operator picked the example gateway up: its config exists with the example models.
    cm = wait_for(lambda: api.get("ConfigMap", "default", "main-config"), timeout=30, what="gateway ConfigMap")
    assert "gpt-4o-mini" in cm["data"]["config.yaml"]
    subprocess.run(
        ["helm", "uninstall", "aimm", "-n", "aimm-system"], env=env, capture_output=True, timeout=120, check=False
    )
    subprocess.run(
        ["kubectl", "delete", "-f", "examples/k8s/", "--wait=false"],
        cwd=clone,
        env=env,
        capture_output=True,
        timeout=120,
    )
    if reason is not None:
        pytest.skip(f"README commands passed; `make image` not run: {reason}")
