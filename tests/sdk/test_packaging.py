"""The built artefacts: one version everywhere, the files a user needs, types a user can check."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tarfile
import tomllib
import zipfile
from pathlib import Path

from tests.sdk.harness import ROOT, run

MYPY = str(Path(sys.executable).parent / "mypy")


def gateway_version() -> str:
    version: str = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    return version


def test_versions_follow_the_gateway(built: dict[str, Path]) -> None:
    version = gateway_version()
    assert built["wheel"].name == f"ai_multimodel_client-{version}-py3-none-any.whl"
    assert built["npm"].name == f"aimm-client-{version}.tgz"
    assert json.loads((ROOT / "sdk/js/package.json").read_text())["version"] == version
    assert f'VERSION = "{version}"' in (ROOT / "sdk/js/src/version.ts").read_text()
    assert f'__version__ = "{version}"' in (ROOT / "sdk/python/aimm_client/_version.py").read_text()
    assert re.search(rf"^## {re.escape(version)}\b", (ROOT / "CHANGELOG.md").read_text(), re.M)


def test_python_artefacts_hold_the_package_and_its_marker(built: dict[str, Path]) -> None:
    wheel = set(zipfile.ZipFile(built["wheel"]).namelist())
    sources = {f"aimm_client/{p.name}" for p in (ROOT / "sdk/python/aimm_client").iterdir() if p.is_file()}
    assert sources <= wheel and "aimm_client/py.typed" in wheel
    with tarfile.open(built["sdist"]) as sdist:
        names = {n.split("/", 1)[1] for n in sdist.getnames() if "/" in n}
    assert sources <= names and "pyproject.toml" in names
    metadata = next(n for n in wheel if n.endswith("METADATA"))
    requires = zipfile.ZipFile(built["wheel"]).read(metadata).decode()
    assert re.findall(r"^Requires-Dist: ([a-z]+)", requires, re.M) == ["httpx", "websockets"]


def test_npm_tarball_has_both_builds_and_no_dependencies(built: dict[str, Path]) -> None:
    with tarfile.open(built["npm"]) as tgz:
        names = set(tgz.getnames())
        manifest = json.load(tgz.extractfile("package/package.json"))  # type: ignore[arg-type]
    for build in ("esm", "cjs"):
        assert {f"package/dist/{build}/index.js", f"package/dist/{build}/index.d.ts"} <= names
    assert "package/dist/cjs/package.json" in names  # marks the CommonJS folder
    assert not manifest.get("dependencies") and not any(n.startswith("package/src/") for n in names)


def test_installed_wheel_type_checks_strictly_for_a_user(sdk_python: Path, tmp_path: Path) -> None:
    """mypy --strict on user code against the installed wheel: needs py.typed and complete hints."""
    user = tmp_path / "user.py"
    user.write_text(
        "from aimm_client import AsyncClient, Client, ContentChunk, QueryResult, RateLimitError\n"
        "def main() -> str:\n"
        "    with Client('http://127.0.0.1:1', 'k') as c:\n"
        "        r: QueryResult = c.query('hi', model='m', max_tokens=3)\n"
        "        for chunk in c.stream('hi'):\n"
        "            if isinstance(chunk, ContentChunk):\n"
        "                return chunk.text\n"
        "        try:\n"
        "            c.batch(['a', {'prompt': 'b'}])\n"
        "        except RateLimitError as e:\n"
        "            return str(e.retry_after)\n"
        "        return r.text + str(r.usage.total_cost)\n"
        "async def amain() -> float:\n"
        "    async with AsyncClient() as c:\n"
        "        return (await c.query('x')).latency_ms\n"
    )
    run([MYPY, "--strict", "--no-incremental", "--python-executable", str(sdk_python), str(user)], tmp_path)
    user.write_text("from aimm_client import Client\nx: int = Client().query('hi')\n")
    failed = subprocess.run(
        [MYPY, "--strict", "--no-incremental", "--python-executable", str(sdk_python), str(user)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )
    assert failed.returncode == 1 and "QueryResult" in failed.stdout  # the types are really checked
