"""Fixtures: one live gateway per session, and the Python SDK imported from its built wheel."""

from __future__ import annotations

import importlib
import json
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

from tests.sdk.harness import LiveGateway, artefacts, clean_venv, live_gateway, run, site_packages

JS_TESTS = Path(__file__).parent / "js"
OPENAI_NPM = "openai@~6.30.1"  # the newest line that still runs on Node 20


@pytest.fixture(scope="session")
def built() -> dict[str, Path]:
    return artefacts()


@pytest.fixture(scope="session")
def sdk_python(built: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The python of a clean venv where the wheel (not the source tree) is installed."""
    return clean_venv(built["wheel"], tmp_path_factory.mktemp("sdk-venv"))


@pytest.fixture(scope="session")
def sdk(sdk_python: Path) -> Iterator[ModuleType]:
    """`aimm_client` as installed from the wheel: a file missing from the package fails here.

    The clean venv goes at the *end* of sys.path (aimm_client is only there), so tests outside
    tests/sdk never pick up its copies of shared dependencies; it is removed afterwards."""
    where = site_packages(sdk_python)
    sys.path.append(where)
    module = importlib.import_module("aimm_client")
    assert str(sdk_python.parent.parent) in str(module.__file__), module.__file__
    yield module
    sys.path.remove(where)


@pytest.fixture(scope="session")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveGateway]:
    with live_gateway(tmp_path_factory.mktemp("gateway")) as gw:
        yield gw


@pytest.fixture
def upstream(gateway: LiveGateway) -> Iterator[LiveGateway]:
    """The gateway, with its fault-injectable upstream reset before and after the test."""
    gateway.upstream.reset()
    yield gateway
    gateway.upstream.reset()


@pytest.fixture(scope="session")
def js_project(built: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh folder where the tarball (not the source tree) and `openai` are npm-installed."""
    work = tmp_path_factory.mktemp("js")
    (work / "package.json").write_text(json.dumps({"name": "sdk-tests", "private": True, "type": "module"}))
    run(["npm", "install", "--no-audit", "--no-fund", "--loglevel=error", str(built["npm"]), OPENAI_NPM], work)
    for path in JS_TESTS.iterdir():
        shutil.copy(path, work / path.name)
    return work
