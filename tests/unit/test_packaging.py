"""The wheel ships every package folder: a folder missing from pyproject's list is missing in the image."""

from __future__ import annotations

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
IMPORT_NAMES = {"gateway": "aimm_gateway", "operator": "aimm_operator"}


def _listed_packages() -> set[str]:
    data = tomllib.loads((ROOT / "pyproject.toml").read_text())
    return set(data["tool"]["setuptools"]["packages"])


def _package_folders() -> set[str]:
    found = set()
    for folder, name in IMPORT_NAMES.items():
        for init in (ROOT / folder).rglob("__init__.py"):
            rel = init.parent.relative_to(ROOT / folder)
            found.add(".".join((name, *rel.parts)))
    return found


def test_every_package_folder_is_in_the_wheel() -> None:
    missing = _package_folders() - _listed_packages()
    assert not missing, f"add to [tool.setuptools] packages in pyproject.toml: {sorted(missing)}"


def test_no_listed_package_without_a_folder() -> None:
    stale = _listed_packages() - _package_folders()
    assert not stale, f"listed in pyproject.toml but no such folder: {sorted(stale)}"
