"""A serving gateway loads no library it does not use: RSS per worker is a target (≤ 80 MB, issue 14).

reportlab (the PDF report), aiohttp and httpx (upstream transports other than the default h1; the
budget webhook), PyJWT (auth.jwt) are each ~10-20 MB of RSS; they load when a feature needs them.
Run in a fresh interpreter: this test process has imported everything already.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

PROBE = """
import json, sys
from aimm_gateway.app import create_app
from aimm_gateway.service import Gateway
import aimm_gateway.cli  # the entry point's own imports count too
gateway = Gateway.from_file(sys.argv[1])
create_app(gateway)
print(json.dumps(sorted({m.split(".")[0] for m in sys.modules})))
"""

OPTIONAL = {"reportlab", "PIL", "aiohttp", "httpx", "jwt"}


def _loaded(config: Path) -> set[str]:
    out = subprocess.run(
        [sys.executable, "-P", "-c", PROBE, str(config)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
        cwd=config.parent,
        env={"PATH": "/usr/bin:/bin", "AIMM_API_KEY": "sk-test", "AIMM_ADMIN_TOKEN": "admin-test"},
    )
    return set(json.loads(out.stdout.splitlines()[-1]))


def test_the_demo_gateway_loads_no_optional_library(tmp_path: Path) -> None:
    demo = Path(__file__).resolve().parents[2] / "examples" / "demo.yaml"
    config = tmp_path / "demo.yaml"
    config.write_text(demo.read_text())
    loaded = _loaded(config)
    assert "aimm_gateway" in loaded and "uvicorn" in loaded  # the probe did build a gateway
    assert not loaded & OPTIONAL, sorted(loaded & OPTIONAL)


def test_a_chosen_transport_loads_at_start_not_in_a_request(tmp_path: Path) -> None:
    """Importing ~20 MB inside the first upstream call would stall the event loop once: a transport
    the config picks is imported when the gateway starts, and only that one."""
    config = tmp_path / "gw.yaml"
    config.write_text(
        "server: {upstream_client: httpx}\n"
        "models: [{name: m, provider: mock, model: m}]\n"
        "auth: {api_keys: [{name: k, key: {env: AIMM_API_KEY}}]}\n"
    )
    loaded = _loaded(config)
    assert "httpx" in loaded
    assert not loaded & (OPTIONAL - {"httpx"}), sorted(loaded & OPTIONAL)
