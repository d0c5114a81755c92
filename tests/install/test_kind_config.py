"""kind-config.yaml, checked by kind's own code (sigs.k8s.io/kind: its loader, defaults and
validation) through hack/gotools/kindcheck, since no container engine runs here to create the
cluster. The checker is shown to reject what kind rejects, so its acceptance means something."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.install.gotools import gotool
from tests.install.paths import REPO

KIND_CONFIG = REPO / "kind-config.yaml"


def kindcheck(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([gotool("kindcheck"), str(path)], capture_output=True, text=True, timeout=60)


def test_kind_accepts_the_config_one_control_plane_two_workers_gateway_port_on_the_host() -> None:
    res = kindcheck(KIND_CONFIG)
    assert res.returncode == 0, res.stderr
    cluster: dict[str, Any] = json.loads(res.stdout)
    assert [n["role"] for n in cluster["nodes"]] == ["control-plane", "worker", "worker"]
    (mapping,) = cluster["nodes"][0]["extraPortMappings"]
    assert (mapping["hostPort"], mapping["listenAddress"], mapping["protocol"]) == (8080, "127.0.0.1", "TCP")
    # The mapped node port is the one the kind-only Service of the gateway uses.
    service = yaml.safe_load((REPO / "deploy" / "kind" / "gateway-nodeport.yaml").read_text())
    assert service["spec"]["ports"][0]["nodePort"] == mapping["containerPort"]
    assert service["spec"]["selector"]["app.kubernetes.io/instance"] == "main"


@pytest.mark.parametrize(
    ("mutate", "error"),
    [
        (lambda c: c["nodes"].append({"role": "wroker"}), "not a valid node role"),
        (lambda c: c["nodes"][0]["extraPortMappings"][0].update(hostPrt=1), "hostPrt"),
        (lambda c: c["nodes"].pop(0), "control-plane"),
        (lambda c: c.update(networking={"podSubnet": "10.244.0.0/99"}), "invalid pod subnet"),
    ],
    ids=["bad-role", "misspelt-field", "no-control-plane", "bad-pod-subnet"],
)
def test_kindcheck_rejects_what_kind_rejects(mutate: Any, error: str, tmp_path: Path) -> None:
    config = yaml.safe_load(KIND_CONFIG.read_text())
    mutate(config)
    bad = tmp_path / "kind.yaml"
    bad.write_text(yaml.safe_dump(config))
    res = kindcheck(bad)
    assert res.returncode == 1 and error in res.stderr, res.stderr


def test_make_kind_up_uses_this_config_and_the_service() -> None:
    script = (REPO / "hack" / "kind.sh").read_text()
    assert "kind create cluster --config kind-config.yaml" in script
    assert "kubectl apply -f deploy/kind/" in script and "kubectl apply -f examples/k8s/" in script
    makefile = (REPO / "Makefile").read_text()
    assert "kind-up:\n\t@bash hack/kind.sh up" in makefile and "kind-down:\n\t@bash hack/kind.sh down" in makefile
