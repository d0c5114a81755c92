"""The TypeScript SDK (from its npm tarball) and the official `openai` npm package, run with
`node --test` against the session's live gateway."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.sdk.harness import ROOT, LiveGateway

HERE = Path(__file__).parent / "js"
OPENAI_NPM = "openai@~6.30.1"  # the newest line that still runs on Node 20


@pytest.fixture(scope="session")
def js_project(built: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh folder where the tarball (not the source tree) and `openai` are npm-installed."""
    work = tmp_path_factory.mktemp("js")
    (work / "package.json").write_text(json.dumps({"name": "sdk-tests", "private": True, "type": "module"}))
    _run(["npm", "install", "--no-audit", "--no-fund", "--loglevel=error", str(built["npm"]), OPENAI_NPM], work)
    for path in HERE.iterdir():
        shutil.copy(path, work / path.name)
    return work


def _run(args: list[str], cwd: Path, env: dict[str, str] | None = None, timeout: float = 300) -> str:
    done = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    output = done.stdout + done.stderr
    assert done.returncode == 0, f"{' '.join(args)} failed ({done.returncode}):\n{output[-6000:]}"
    return output


def _node_env(gateway: LiveGateway) -> dict[str, str]:
    return {**os.environ, **gateway.env(), "AIMM_TEST_UPSTREAM": gateway.upstream.url}


def test_typescript_sdk(js_project: Path, gateway: LiveGateway) -> None:
    # Node 20 has a global WebSocket only behind this flag (Node >= 22: always).
    args = ["node", "--experimental-websocket", "--test", "--test-concurrency=1", "sdk.test.mjs", "cjs.test.cjs"]
    output = _run(args, js_project, _node_env(gateway))
    assert "# fail 0" in output and "# pass 16" in output, output[-3000:]


def test_official_openai_npm_package(js_project: Path, gateway: LiveGateway) -> None:
    output = _run(["node", "--test", "openai.test.mjs"], js_project, _node_env(gateway))
    assert "# fail 0" in output and "# pass 4" in output, output[-3000:]


def test_type_declarations(js_project: Path) -> None:
    """A consumer's TypeScript compiles against the installed .d.ts, in both module systems."""
    tsc = str(ROOT / "sdk" / "js" / "node_modules" / ".bin" / "tsc")
    common = ["--noEmit", "--strict", "--target", "ES2022", "--lib", "ES2022,DOM,DOM.Iterable"]
    _run([tsc, *common, "--module", "NodeNext", "--moduleResolution", "NodeNext", "consumer.ts"], js_project)
    _run([tsc, *common, "--module", "CommonJS", "--moduleResolution", "Node10", "consumer.ts"], js_project)
