"""Run the Argo CD health scripts in deploy/argocd/ with a real Lua interpreter.

Argo CD hands a health script the live object as the global `obj` and reads back the table the
script returns. Here the object is written as a Lua table literal, set as `obj`, and the script
is run with `dofile`: the same contract, with Debian's lua5.4 instead of Argo CD's gopher-lua.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

from tests.install.paths import REPO

HEALTH_DIR = REPO / "deploy" / "argocd" / "health"
LUA = "lua5.4"

_RUNNER = """
obj = dofile(arg[1])
local hs = dofile(arg[2])
io.write(hs.status or "", "\\n", hs.message or "")
"""


def lua_literal(value: Any) -> str:
    """A Python value from YAML/JSON as a Lua expression (lists become 1-based sequences)."""
    if value is None:
        return "nil"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return _lua_string(value)
    if isinstance(value, list):
        return "{" + ", ".join(lua_literal(v) for v in value) + "}"
    if isinstance(value, dict):
        return "{" + ", ".join(f"[{_lua_string(str(k))}] = {lua_literal(v)}" for k, v in value.items()) + "}"
    raise TypeError(f"no Lua form for {type(value).__name__}")


def _lua_string(text: str) -> str:
    out = []
    for ch in text:
        if ch in '"\\':
            out.append("\\" + ch)
        elif ch == "\n":
            out.append("\\n")
        elif ord(ch) < 32:
            out.append(f"\\{ord(ch):03d}")
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


def health_script(kind: str, group: str = "aimm.io") -> Path:
    return HEALTH_DIR / group / kind / "health.lua"


def health(obj: dict[str, Any], workdir: Path) -> tuple[str, str]:
    """(status, message) the kind's health.lua gives `obj`."""
    lua = shutil.which(LUA)
    assert lua, f"{LUA} not found: bash hack/system-deps.sh {LUA}"
    group = obj["apiVersion"].split("/")[0]
    data = workdir / "obj.lua"
    data.write_text("return " + lua_literal(json.loads(json.dumps(obj))) + "\n")
    runner = workdir / "runner.lua"
    runner.write_text(_RUNNER)
    res = subprocess.run(
        [lua, str(runner), str(data), str(health_script(obj["kind"], group))],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert res.returncode == 0, res.stderr
    status, _, message = res.stdout.partition("\n")
    return status, message
