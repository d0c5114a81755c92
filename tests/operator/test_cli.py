"""`aimm operator run` as the README tells users to run it, against the real API server.

The `aimm` entry point delegates to the operator's own parser, so `-n NS` watches exactly that
namespace (a string, not a list) and `--kubeconfig`, `--resync-interval` and `-v` take effect.
The shared all-namespaces operator is stopped for the test so only this process reconciles.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.operator.conftest import REPO, OperatorProcess
from tests.operator.kubeapi import Api, wait_condition
from tests.operator.manifests import gateway, model

AIMM = Path(sys.executable).parent / "aimm"


@pytest.fixture()
def quiet(operator: OperatorProcess) -> Iterator[None]:
    """No other operator running during the test; the shared one is back afterwards."""
    operator.stop()
    yield
    operator.start()


def test_aimm_operator_run_with_namespace_and_kubeconfig(
    api: Api, operator_kubeconfig: Path, quiet: None, ns: str, tmp_path: Path
) -> None:
    other = f"{ns}-other"
    api.create_namespace(other)
    for n in (ns, other):
        api.apply(model(n, "m"))
        api.apply(gateway(n, "gw"))
    log_path = tmp_path / "operator.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [str(AIMM), "operator", "run", "-n", ns, "--kubeconfig", str(operator_kubeconfig), "-v"],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            cwd=REPO,
        )
        try:
            wait_condition(api, "AIModel", ns, "m", "Ready", "True", reason="Accepted", timeout=30)
            assert api.get("ConfigMap", ns, "gw-config") is not None
            time.sleep(2)  # the other namespace had as long: nothing touched it
            assert api.get("ConfigMap", other, "gw-config") is None
            assert not (api.get("AIModel", other, "m") or {}).get("status")
            assert proc.poll() is None, log_path.read_text()
        finally:
            proc.terminate()
            proc.wait(15)
            api.request("DELETE", f"/api/v1/namespaces/{other}")
    text = log_path.read_text(errors="replace")
    assert " DEBUG " in text, text[-2000:]  # -v reached the operator


def test_aimm_operator_run_help_is_the_operators() -> None:
    out = subprocess.run([str(AIMM), "operator", "run", "--help"], capture_output=True, text=True, check=True).stdout
    flags = ("--kubeconfig", "--context", "--liveness", "--resync-interval", "--stats-timeout", "--verbose")
    for flag in (*flags, "--metrics-port"):
        assert flag in out
