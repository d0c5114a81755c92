"""The TypeScript SDK (from its npm tarball) and the official `openai` npm package, run with
`node --test` against the session's live gateway."""

from __future__ import annotations

import os
from pathlib import Path

from tests.sdk.harness import ROOT, LiveGateway, run


def _node_env(gateway: LiveGateway) -> dict[str, str]:
    return {**os.environ, **gateway.env(), "AIMM_TEST_UPSTREAM": gateway.upstream.url}


def test_typescript_sdk(js_project: Path, gateway: LiveGateway) -> None:
    # Node 20 has a global WebSocket only behind this flag (Node >= 22: always).
    args = ["node", "--experimental-websocket", "--test", "--test-concurrency=1", "sdk.test.mjs", "cjs.test.cjs"]
    output = run(args, js_project, _node_env(gateway))
    assert "# fail 0" in output and "# pass 18" in output, output[-3000:]


def test_official_openai_npm_package(js_project: Path, gateway: LiveGateway) -> None:
    output = run(["node", "--test", "openai.test.mjs"], js_project, _node_env(gateway))
    assert "# fail 0" in output and "# pass 4" in output, output[-3000:]


def test_type_declarations(js_project: Path) -> None:
    """A consumer's TypeScript compiles against the installed .d.ts, in both module systems."""
    tsc = str(ROOT / "sdk" / "js" / "node_modules" / ".bin" / "tsc")
    common = ["--noEmit", "--strict", "--target", "ES2022", "--lib", "ES2022,DOM,DOM.Iterable"]
    run([tsc, *common, "--module", "NodeNext", "--moduleResolution", "NodeNext", "consumer.ts"], js_project)
    run([tsc, *common, "--module", "CommonJS", "--moduleResolution", "Node10", "consumer.ts"], js_project)
