"""The wheel (and so the image) carries every package: pyproject.toml lists the packages by hand,
because the folders are mapped to other import names (gateway/ -> aimm_gateway)."""

from __future__ import annotations

import tomllib

from tests.install.paths import REPO


def test_every_package_folder_is_listed_in_pyproject() -> None:
    setuptools = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]
    listed = set(setuptools["packages"])
    for import_name, folder in setuptools["package-dir"].items():
        for init in (REPO / folder).rglob("__init__.py"):
            parts = init.parent.relative_to(REPO / folder).parts
            name = ".".join((import_name, *parts))
            assert name in listed, f"{name} ({init.parent.relative_to(REPO)}) missing from [tool.setuptools] packages"
