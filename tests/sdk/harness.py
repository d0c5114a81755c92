"""Real processes for the SDK tests: the gateway (examples/demo.yaml + one fault-injectable model
backed by `aimm mock-provider`), the built SDK artefacts and a clean venv holding the wheel.

Tests reach everything over loopback HTTP, the way a user's program would.
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
import venv
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import yaml

from aimm_gateway.bench.procs import free_port, process

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
DIST = ROOT / "dist" / "sdk"
API_KEY = "sk-aimm-sdk-tests"
ADMIN_TOKEN = "admin-sdk-tests"
FAULTY = "faulty"  # the demo config plus this model, whose upstream can be told to misbehave
# Real providers are never called: their keys are blanked in the gateway's environment.
_PROVIDER_KEYS = ("OPENAI_API_KEY", "ANTHROPIC_API_KEY", "GEMINI_API_KEY", "COHERE_API_KEY")


@dataclass
class Upstream:
    url: str

    def set_faults(self, **faults: Any) -> None:
        httpx.post(f"{self.url}/_mock/faults", json=faults, timeout=5).raise_for_status()

    def reset(self) -> None:
        httpx.post(f"{self.url}/_mock/reset", timeout=5).raise_for_status()

    def requests(self) -> int:
        total: int = httpx.get(f"{self.url}/_mock/stats", timeout=5).json()["total"]
        return total


@dataclass
class LiveGateway:
    url: str
    upstream: Upstream
    log: Path

    def env(self) -> dict[str, str]:
        """What a program using the SDK needs: the base URL and the keys."""
        return {"AIMM_BASE_URL": self.url, "AIMM_API_KEY": API_KEY, "AIMM_ADMIN_TOKEN": ADMIN_TOKEN}

    def admin(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        headers = {"authorization": f"Bearer {ADMIN_TOKEN}"}
        return httpx.request(method, f"{self.url}{path}", headers=headers, timeout=10, **kwargs)

    def in_flight(self, model: str) -> int:
        models = self.admin("GET", "/admin/models/status").json()["models"]
        return int(next(m for m in models if m["name"] == model)["in_flight"])

    def openapi(self) -> dict[str, Any]:
        doc: dict[str, Any] = httpx.get(f"{self.url}/openapi.json", timeout=10).json()
        return doc


def _config(upstream_url: str, workdir: Path) -> dict[str, Any]:
    config: dict[str, Any] = yaml.safe_load((ROOT / "examples" / "demo.yaml").read_text())
    # The usage store in the test's folder, not the demo's relative data/ (the process runs in the repo).
    config["store"]["sqlite_path"] = str(workdir / "usage.db")
    # The audit trail in the store too, so GET /admin/audit (the SDKs' `audit`) has a source.
    config.setdefault("hardening", {}).setdefault("audit", {})["store"] = True
    config["models"].append(
        {
            "name": FAULTY,
            "provider": "openai_compatible",
            "base_url": f"{upstream_url}/v1",
            "api_key": {"env": "AIMM_SDK_UPSTREAM_KEY"},
            "pricing": {"input_per_1k": "0.001", "output_per_1k": "0.002"},
            "capabilities": ["chat", "streaming", "tools", "json"],
            # Faults are injected on purpose here: keep the breaker out of the way of the next test.
            "circuit_breaker": {"failure_threshold": 1000, "min_requests": 100000},
        }
    )
    return config


@contextmanager
def live_gateway(workdir: Path) -> Iterator[LiveGateway]:
    """`aimm mock-provider` + `aimm gateway serve` as subprocesses on free loopback ports."""
    # On top of this environment; an empty key counts as none, so real providers are never called.
    env = dict.fromkeys(_PROVIDER_KEYS, "")
    env.update(AIMM_API_KEY=API_KEY, AIMM_ADMIN_TOKEN=ADMIN_TOKEN, AIMM_SDK_UPSTREAM_KEY="upstream-key")
    mock_port, gw_port = free_port(), free_port()
    mock_url, gw_url = f"http://127.0.0.1:{mock_port}", f"http://127.0.0.1:{gw_port}"
    config = workdir / "gateway.yaml"
    config.write_text(yaml.safe_dump(_config(mock_url, workdir), sort_keys=False))
    aimm = str(BIN / "aimm")
    mock_args = [aimm, "mock-provider", "--format", "openai", "--port", str(mock_port)]
    gw_args = [aimm, "gateway", "serve", "--config", str(config), "--port", str(gw_port)]
    with (
        process(mock_args, f"{mock_url}/_mock/stats", env, workdir / "mock.log"),
        process(gw_args, f"{gw_url}/ready", env, workdir / "gateway.log"),
    ):
        yield LiveGateway(gw_url, Upstream(mock_url), workdir / "gateway.log")


# -- artefacts -------------------------------------------------------------------------------


def artefacts() -> dict[str, Path]:
    """The built wheel, sdist and npm tarball (`make sdk`); built here when missing or stale."""
    if _stale():
        done = subprocess.run(["bash", str(ROOT / "hack" / "sdk-build.sh")], cwd=ROOT, capture_output=True, text=True)
        if done.returncode:
            raise RuntimeError(f"hack/sdk-build.sh failed:\n{done.stdout[-2000:]}\n{done.stderr[-3000:]}")
    found = {
        "wheel": next(DIST.glob("ai_multimodel_client-*.whl")),
        "sdist": next(DIST.glob("ai_multimodel_client-*.tar.gz")),
        "npm": next(DIST.glob("aimm-client-*.tgz")),
    }
    return found


def _stale() -> bool:
    built = list(DIST.glob("*"))
    if len(built) < 3:
        return True
    oldest = min(p.stat().st_mtime for p in built)
    sources = [p for d in ("sdk/python/aimm_client", "sdk/js/src") for p in (ROOT / d).rglob("*") if p.is_file()]
    sources += [ROOT / "sdk/python/pyproject.toml", ROOT / "sdk/js/package.json"]
    return any(p.stat().st_mtime > oldest for p in sources)


def clean_venv(wheel: Path, where: Path) -> Path:
    """A new venv with only the wheel (and its declared dependencies) installed; its python."""
    digest = hashlib.sha256(wheel.read_bytes()).hexdigest()[:12]
    python = where / f"venv-{digest}" / "bin" / "python"
    if not python.exists():
        install_into_new_venv(python.parent.parent, str(wheel))
    return python


def install_into_new_venv(target: Path, *requirements: str) -> Path:
    """Create a venv without pip of its own and install into it with ours (saves ensurepip)."""
    venv.EnvBuilder(with_pip=False, clear=True).create(target)
    python = target / "bin" / "python"
    pip = [sys.executable, "-P", "-m", "pip", "--python", str(python), "install", "-q", "--disable-pip-version-check"]
    done = subprocess.run([*pip, *requirements], capture_output=True, text=True)
    if done.returncode:
        raise RuntimeError(f"installing {requirements} into a clean venv failed:\n{done.stderr[-3000:]}")
    return python


def site_packages(python: Path) -> str:
    code = "import sysconfig; print(sysconfig.get_paths()['purelib'])"
    return subprocess.run([str(python), "-P", "-c", code], check=True, capture_output=True, text=True).stdout.strip()


def run(args: list[str], cwd: Path, env: dict[str, str] | None = None, timeout: float = 300) -> str:
    """Run a command; its combined output, or a failed assertion showing that output."""
    done = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    output = done.stdout + done.stderr
    assert done.returncode == 0, f"{' '.join(args)} failed ({done.returncode}):\n{output[-6000:]}"
    return output
