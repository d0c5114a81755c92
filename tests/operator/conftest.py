"""Operator integration tests: one real control plane per session, one namespace per test.

The operator runs as a subprocess (`python -m aimm_operator`) with a kubeconfig holding its own
ServiceAccount's token, bound to the RBAC shipped in deploy/operator/, so every test also proves
that RBAC is enough. Its API traffic goes through `FaultProxy`, so tests can inject failures.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.k8s_harness import ControlPlane
from tests.operator.kubeapi import Api
from tests.operator.proxy import FaultProxy

REPO = Path(__file__).resolve().parents[2]
OPERATOR_NS = "aimm-system"
OPERATOR_SA = "aimm-operator"
STATS_INTERVAL = 0.5


class OperatorProcess:
    """`python -m aimm_operator --all-namespaces`, restartable, with its log kept for failures."""

    def __init__(self, kubeconfig: Path, log_dir: Path) -> None:
        self.kubeconfig = kubeconfig
        self.log_dir = log_dir
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0

    @property
    def log_path(self) -> Path:
        return self.log_dir / f"operator-{self.starts}.log"

    def start(self) -> None:
        assert self.proc is None or self.proc.poll() is not None
        self.starts += 1
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        env.pop("KUBECONFIG", None)
        self._log = open(self.log_path, "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "aimm_operator",
                "--all-namespaces",
                f"--kubeconfig={self.kubeconfig}",
                f"--stats-interval={STATS_INTERVAL}",
                "--stats-timeout=1",
                "--resync-interval=20",
            ],
            stdout=self._log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
            cwd=REPO,
        )

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 15) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self._log.close()

    def kill(self) -> None:
        self.stop(signal.SIGKILL)

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""


@pytest.fixture(scope="session")
def control_plane() -> Iterator[ControlPlane]:
    # CRDs go in before the controller-manager starts, so its garbage collector can collect
    # AIGateway children at once.
    cp = ControlPlane(crds=[REPO / "crds"]).start()
    try:
        cp.apply_dir(REPO / "deploy" / "operator")
        yield cp
    finally:
        cp.stop()


@pytest.fixture(scope="session")
def api(control_plane: ControlPlane) -> Api:
    return Api(control_plane.kubeconfig_path)


@pytest.fixture(scope="session")
def operator_token(control_plane: ControlPlane) -> str:
    res = control_plane.kubectl("create", "token", OPERATOR_SA, "-n", OPERATOR_NS, "--duration=2h", check=True)
    return res.stdout.strip()


@pytest.fixture(scope="session")
def operator_kubeconfig(control_plane: ControlPlane, operator_token: str) -> Path:
    """The operator's own identity: its ServiceAccount token, straight to the API server."""
    return control_plane.kubeconfig_for_token(operator_token, "aimm-operator")


@pytest.fixture(scope="session")
def proxy(control_plane: ControlPlane) -> Iterator[FaultProxy]:
    p = FaultProxy(upstream=control_plane.server, ca_file=str(control_plane.ca_file)).start()
    yield p
    p.stop()


@pytest.fixture(scope="session")
def operator(
    control_plane: ControlPlane, operator_token: str, proxy: FaultProxy, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[OperatorProcess]:
    """The operator, as its ServiceAccount, through the fault proxy."""
    d = tmp_path_factory.mktemp("operator")
    kubeconfig = d / "operator.kubeconfig"
    kubeconfig.write_text(
        json.dumps(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "proxy", "cluster": {"server": proxy.url}}],
                "users": [{"name": "aimm-operator", "user": {"token": operator_token}}],
                "contexts": [{"name": "aimm-operator", "context": {"cluster": "proxy", "user": "aimm-operator"}}],
                "current-context": "aimm-operator",
            }
        )
    )
    op = OperatorProcess(kubeconfig, d)
    op.start()
    yield op
    op.stop()
    if os.environ.get("AIMM_SHOW_OPERATOR_LOG"):
        print(op.log())


@pytest.fixture()
def ns(api: Api, request: pytest.FixtureRequest) -> Iterator[str]:
    slug = re.sub(r"[^a-z0-9]+", "-", request.node.name.removeprefix("test_").lower())[:28].strip("-")
    name = f"t-{slug}-{uuid.uuid4().hex[:5]}"
    api.create_namespace(name)
    yield name
    api.request("DELETE", f"/api/v1/namespaces/{name}")


@pytest.fixture()
def running(operator: OperatorProcess) -> Iterator[OperatorProcess]:
    """The operator, (re)started if an earlier test stopped it; its log is shown on failure."""
    if not operator.alive():
        operator.start()
    yield operator
    if not operator.alive():
        operator.start()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]):  # type: ignore[no-untyped-def]
    outcome = yield
    report = outcome.get_result()
    if report.when == "call" and report.failed and "running" in getattr(item, "fixturenames", ()):
        op = item.funcargs.get("running")  # type: ignore[attr-defined]
        if isinstance(op, OperatorProcess):
            report.sections.append(("operator log (tail)", "\n".join(op.log().splitlines()[-80:])))
