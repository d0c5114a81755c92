"""Volumes written the way the kubelet writes them (there is no kubelet here): a Secret or
ConfigMap volume is a versioned directory of files, `..data` a symlink to the current version, and
each key a symlink through `..data`; an update writes a new version and swaps `..data` atomically,
so a reader sees the old files or the new ones, never a mix."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path


def write_secret_volume(folder: Path, data: dict[str, bytes]) -> None:
    """The volume at `folder` now holds exactly `data` (keys gone from it are removed, as the kubelet does)."""
    folder.mkdir(parents=True, exist_ok=True)
    version = Path(tempfile.mkdtemp(prefix="..", dir=folder))  # a fresh version dir, as the kubelet's timestamped ones
    for key, value in data.items():
        (version / key).write_bytes(value)
        if not (folder / key).is_symlink():
            (folder / key).symlink_to(f"..data/{key}")
    old = (folder / "..data").resolve() if (folder / "..data").is_symlink() else None
    tmp = folder / "..data_tmp"
    tmp.symlink_to(version.name)
    os.replace(tmp, folder / "..data")
    for link in folder.iterdir():
        if link.is_symlink() and not link.name.startswith("..") and link.name not in data:
            link.unlink()
    if old is not None and old != version.resolve():
        shutil.rmtree(old)
