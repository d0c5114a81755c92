"""Every code block of docs/clients.md, run against the live gateway.

Python blocks run with the SDK installed from its wheel, JavaScript blocks in a folder where the
npm tarball is installed, and install commands are run with the package name replaced by the
built artefact. A block after `<!-- snippet: needs METHOD PATH -->` shows an endpoint landing in
parallel work: until the gateway documents it, the block must fail with the SDK's clean error.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.sdk.harness import ROOT, LiveGateway, install_into_new_venv, site_packages

DOC = ROOT / "docs" / "clients.md"
_BLOCK = re.compile(r"(?:<!-- snippet: needs (\w+) (\S+) -->\n)?```(\w+)\n(.*?)```", re.S)
_CLEAN_ERRORS = ("APIError", "PermissionDeniedError", "NotFoundError", "APIConnectionError")


@dataclass(frozen=True)
class Snippet:
    lang: str
    code: str
    line: int
    needs: tuple[str, str] | None

    @property
    def id(self) -> str:
        return f"{self.lang}@L{self.line}"


def snippets() -> list[Snippet]:
    text = DOC.read_text()
    out = []
    for m in _BLOCK.finditer(text):
        needs = (m.group(1), m.group(2)) if m.group(1) else None
        out.append(Snippet(m.group(3), m.group(4), text.count("\n", 0, m.start()) + 1, needs))
    return out


SNIPPETS = snippets()


def test_the_page_has_every_section_for_both_sdks() -> None:
    langs = [s.lang for s in SNIPPETS]
    assert langs.count("python") >= 9 and langs.count("js") >= 7 and langs.count("bash") == 2


@pytest.mark.parametrize("snippet", SNIPPETS, ids=[s.id for s in SNIPPETS])
def test_snippet_runs(
    snippet: Snippet,
    gateway: LiveGateway,
    sdk_python: Path,
    js_project: Path,
    built: dict[str, Path],
    tmp_path: Path,
) -> None:
    env = {**os.environ, **gateway.env()}
    if snippet.lang == "python":
        env["PYTHONPATH"] = site_packages(sdk_python)
        path = tmp_path / "snippet.py"
        path.write_text(snippet.code)
        args, cwd = [sys.executable, str(path)], tmp_path
    elif snippet.lang == "js":
        path = js_project / f"snippet-{snippet.line}.mjs"
        path.write_text(snippet.code)
        args, cwd = ["node", "--experimental-websocket", path.name], js_project
    elif snippet.lang == "bash":
        args, cwd = _install_command(snippet.code, built, tmp_path), tmp_path
    else:
        pytest.fail(f"docs/clients.md line {snippet.line}: no runner for ```{snippet.lang}")
    done = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=120)
    output = done.stdout + done.stderr
    if snippet.needs is not None and snippet.needs[1] not in gateway.openapi()["paths"]:
        assert done.returncode != 0 and any(e in output for e in _CLEAN_ERRORS), output[-3000:]
        return
    assert done.returncode == 0, f"docs/clients.md line {snippet.line}:\n{output[-3000:]}"
    assert done.stdout.strip() or snippet.lang == "bash"


def _install_command(code: str, built: dict[str, Path], where: Path) -> list[str]:
    """The documented install line, run for real, with the artefact standing in for the registry
    (pip installs into a new venv here; the returned command proves the install works)."""
    line = code.strip()
    if line == "pip install ai-multimodel-client":
        python = install_into_new_venv(where / "venv", str(built["wheel"]))
        return [str(python), "-c", "import aimm_client, httpx, websockets; print(aimm_client.__version__)"]
    if line == "npm install @aimm/client":
        (where / "package.json").write_text('{"name": "docs-install", "private": true}')
        check = "node -e \"require('@aimm/client').Client\""
        return ["bash", "-c", f"npm install --no-audit --no-fund --loglevel=error {built['npm']} && {check}"]
    raise AssertionError(f"unknown install command in docs/clients.md: {line!r}")
