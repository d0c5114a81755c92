"""The project's image, built by `make image` (hack/image.sh), and containers of it run with
`buildah run --isolation chroot`: no daemon, the host's network (so a server in the container
listens on the host's loopback), the image's user, environment and working directory."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from tests.install.paths import REPO

STORAGE_DRIVER = os.environ.get("STORAGE_DRIVER", "vfs")
BUILD_TIMEOUT = 45 * 60  # a cold build (base from Debian packages + wheels from PyPI) takes minutes


def buildah(*args: str, check: bool = True, timeout: float = 300, **kw: Any) -> subprocess.CompletedProcess[str]:
    res = subprocess.run(
        ["buildah", "--storage-driver", STORAGE_DRIVER, *args], capture_output=True, text=True, timeout=timeout, **kw
    )
    if check:
        assert res.returncode == 0, f"buildah {' '.join(args)}\n{res.stdout}\n{res.stderr}"
    return res


def why_buildah_cannot_run() -> str | None:
    """None when buildah can build and run containers here, else the reason."""
    if shutil.which("buildah") is None:
        return "buildah is not installed (bash hack/system-deps.sh buildah)"
    if os.geteuid() != 0:
        return "buildah with chroot isolation and vfs storage needs root here (rootless needs user namespaces set up)"
    res = buildah("info", check=False, timeout=60)
    if res.returncode != 0:
        return f"`buildah info` fails: {res.stderr.strip()[:300]}"
    return None


def build_image() -> str:
    res = subprocess.run(["bash", "hack/image.sh"], cwd=REPO, capture_output=True, text=True, timeout=BUILD_TIMEOUT)
    assert res.returncode == 0, f"make image failed:\n{res.stderr[-4000:]}"
    return res.stdout.strip().splitlines()[-1]


class Container:
    """One working container of the image; removed by `remove()`."""

    def __init__(self, image: str) -> None:
        self.image = image
        self.id = buildah("from", "--pull=never", "--quiet", image).stdout.strip()

    def run_args(self, command: Sequence[str], env: dict[str, str], mounts: Sequence[str]) -> list[str]:
        args = ["buildah", "--storage-driver", STORAGE_DRIVER, "run", "--isolation", "chroot"]
        for key, value in env.items():
            args += ["--env", f"{key}={value}"]
        for mount in mounts:
            args += ["--mount", mount]
        return [*args, self.id, "--", *command]

    def run(
        self, *command: str, env: dict[str, str] | None = None, mounts: Sequence[str] = (), timeout: float = 120
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            self.run_args(command, env or {}, mounts), capture_output=True, text=True, timeout=timeout
        )

    @contextmanager
    def background(
        self, *command: str, log: Path, env: dict[str, str] | None = None, mounts: Sequence[str] = ()
    ) -> Iterator[subprocess.Popen[bytes]]:
        """A long-running command (a server); stopped with SIGTERM to its process group."""
        with log.open("wb") as out:
            proc = subprocess.Popen(
                self.run_args(command, env or {}, mounts), stdout=out, stderr=subprocess.STDOUT, start_new_session=True
            )
            try:
                yield proc
            finally:
                if proc.poll() is None:
                    os.killpg(proc.pid, signal.SIGTERM)
                    try:
                        proc.wait(20)
                    except subprocess.TimeoutExpired:
                        os.killpg(proc.pid, signal.SIGKILL)
                        proc.wait(10)

    @contextmanager
    def read_only_root(self) -> Iterator[None]:
        """The container's root filesystem mounted read-only (what `readOnlyRootFilesystem` does)
        while the block runs: chroot isolation runs the command in the mounted root itself.

        buildah bind-mounts /run/.containerenv into every container it runs and would create the
        mount point, which a read-only root refuses; so it is made beforehand. (buildah 1.28 then
        fails to remove it when the command ends and prints a panic after the command's output:
        harmless, the command has run.)"""
        root = buildah("mount", self.id).stdout.strip()
        (Path(root) / "run" / ".containerenv").touch()
        subprocess.run(["mount", "--bind", root, root], check=True)
        try:
            subprocess.run(["mount", "-o", "remount,bind,ro", root], check=True)
            yield
        finally:
            subprocess.run(["umount", root], check=True)
            buildah("umount", self.id)

    def root(self) -> Path:
        return Path(buildah("mount", self.id).stdout.strip())

    def remove(self) -> None:
        buildah("rm", self.id, check=False)
