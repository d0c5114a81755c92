"""The layer rules of docs/architecture.md, checked by parsing every module's imports (ast)."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
GATEWAY = ROOT / "gateway"
HTTP_SERVER = ("starlette", "uvicorn", "granian", "aimm_gateway.api", "aimm_gateway.app")
HTTP_CLIENTS = ("aiohttp", "httpx")

# (folder or module under gateway/, forbidden import prefixes, why)
RULES: list[tuple[str, tuple[str, ...], str]] = [
    ("", ("aimm_operator",), "the data plane never imports the control plane"),
    (
        "providers",
        (
            "aimm_gateway.routing",
            "aimm_gateway.stages",
            "aimm_gateway.attempts",
            "aimm_gateway.pipeline",
            "aimm_gateway.backlog",  # the h1 client gets a plain callable (`on_sent`)
            *HTTP_SERVER,
        ),
        "providers know wire formats, not routing, stages, the backlog or the HTTP server",
    ),
    ("backlog", ("aimm_gateway",), "the backlog is a leaf: the ledger, the access log and the pipeline use it"),
    ("routing", (*HTTP_SERVER, *HTTP_CLIENTS, "aimm_gateway.providers"), "routing knows no HTTP and no provider"),
    ("stages", HTTP_SERVER, "stages see a RequestContext, never the HTTP layer"),
    ("attempts", HTTP_SERVER, "the attempt loop's parts see a RequestContext, never the HTTP layer"),
    ("live", HTTP_SERVER, "the live feed knows no HTTP: the WebSocket route drains its queues"),
]
# Entry points allowed across a rule: the CLI delegates `aimm operator ...` and `aimm crds`.
EXEMPT = {("", "gateway/cli.py")}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(GATEWAY).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(["aimm_gateway", *parts])


def imports(path: Path) -> Iterator[str]:
    """Every module `path` imports, relative imports resolved, including ones inside functions."""
    package = module_name(path) if path.name == "__init__.py" else module_name(path).rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                yield f"{base}.{node.module}" if node.module else base
            elif node.module:
                yield node.module


def edges(folder: str) -> Iterator[tuple[str, str]]:
    base = GATEWAY / folder if folder else GATEWAY
    files = [base.with_suffix(".py")] if base.with_suffix(".py").is_file() else sorted(base.rglob("*.py"))
    for path in files:
        rel = path.relative_to(ROOT).as_posix()
        for name in imports(path):
            yield rel, name


def forbidden(name: str, prefixes: tuple[str, ...]) -> bool:
    return any(name == p or name.startswith(p + ".") for p in prefixes)


@pytest.mark.parametrize(("folder", "banned", "why"), RULES, ids=[r[0] or "gateway" for r in RULES])
def test_layer_rule(folder: str, banned: tuple[str, ...], why: str) -> None:
    broken = [
        f"{rel} imports {name}"
        for rel, name in edges(folder)
        if forbidden(name, banned) and (folder, rel) not in EXEMPT
    ]
    assert not broken, f"{why}:\n" + "\n".join(broken)


def test_the_checker_sees_relative_and_nested_imports() -> None:
    # The rules are only as good as the parser: make sure it catches every import form.
    assert "aimm_gateway.attempts.ledger" in set(imports(GATEWAY / "attempts" / "openers.py"))
    assert "aimm_operator.cli" in set(imports(GATEWAY / "cli.py"))  # imported inside a function
    assert forbidden("starlette.requests", HTTP_SERVER) and not forbidden("aimm_gateway.apis", HTTP_SERVER)
