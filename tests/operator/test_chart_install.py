"""`helm install` of the chart on the real API server, with the chart's own AIGateway, and its
`helm test` hook.

No kubelet runs here, so the test plays its part twice, as test_e2e_gateway.py does: it runs the
gateway container's command with the ConfigMap's config and the Deployment's env, and then runs
the `helm test` Pod's command (the chart's files/gateway_test.py) locally, with the Pod's env
(secretKeyRef values read from the Secret) and the Service URL pointed at that gateway process.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import yaml

from tests.install.paths import CHART
from tests.k8s_harness import ControlPlane
from tests.operator.kubeapi import Api, wait_for
from tests.operator.manifests import model
from tests.operator.pods import container_env, free_port

CLIENT_KEY = "sk-chart-test"


def helm(cp: ControlPlane, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    res = subprocess.run(
        [str(cp.bin_dir / "helm"), f"--kubeconfig={cp.kubeconfig_path}", *args],
        capture_output=True,
        text=True,
        timeout=180,
    )
    if check:
        assert res.returncode == 0, f"helm {' '.join(args)}\n{res.stdout}\n{res.stderr}"
    return res


@contextmanager
def gateway_process(api: Api, ns: str, name: str, tmp_path: Path) -> Iterator[str]:
    """The gateway pod's container, run as a local process (what the kubelet would start)."""
    cm = wait_for(lambda: api.get("ConfigMap", ns, f"{name}-config"), what="gateway ConfigMap")
    dep = wait_for(lambda: api.get("Deployment", ns, name), what="gateway Deployment")
    (tmp_path / "config.yaml").write_text(cm["data"]["config.yaml"])
    command = dep["spec"]["template"]["spec"]["containers"][0]["command"]
    assert command[:3] == ["aimm", "gateway", "serve"]
    port = free_port()
    args = [sys.executable, "-c", "import sys; from aimm_gateway.cli import main; sys.exit(main())", *command[1:]]
    args[args.index("--config") + 1] = str(tmp_path / "config.yaml")
    args[args.index("--port") + 1] = str(port)
    env = {**os.environ, **container_env(api, ns, dep)}
    with (tmp_path / "gateway.log").open("wb") as log:
        proc = subprocess.Popen(args, env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            url = f"http://127.0.0.1:{port}"
            wait_for(lambda: _ready(url), timeout=30, what="gateway /ready")
            yield url
        finally:
            proc.terminate()
            proc.wait(10)


def _ready(url: str) -> bool:
    try:
        return httpx.get(f"{url}/ready", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def run_test_pod(api: Api, ns: str, pod: dict[str, Any], url: str, **override: str) -> subprocess.CompletedProcess[str]:
    """The `helm test` Pod's command, locally, with its env resolved and AIMM_URL set to `url`."""
    container = pod["spec"]["containers"][0]
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIMM_")}
    for item in container["env"]:
        if "value" in item:
            env[item["name"]] = item["value"]
        else:
            env.update(container_env(api, ns, {"spec": {"template": {"spec": {"containers": [{"env": [item]}]}}}}))
    env.update(AIMM_URL=url, AIMM_TEST_TIMEOUT="10", **override)
    command = container["command"]
    assert command[0] == "python"
    return subprocess.run([sys.executable, *command[1:]], env=env, capture_output=True, text=True, timeout=60)


def test_helm_install_gateway_and_helm_test(
    control_plane: ControlPlane, api: Api, running, ns: str, tmp_path: Path
) -> None:
    api.create_secret(ns, "gateway-auth", {"api-key": CLIENT_KEY})
    api.apply(model(ns, "mock-fast"))
    release = f"aimm-{uuid.uuid4().hex[:6]}"
    spec = {
        "replicas": {"min": 1, "max": 1},
        "autoscaling": {"enabled": False},
        "auth": {"apiKeySecretRef": {"name": "gateway-auth", "key": "api-key"}},
    }
    values = tmp_path / "values.yaml"
    values.write_text(yaml.safe_dump({"watchNamespace": ns, "gateway": {"create": True, "spec": spec}}))
    helm(control_plane, "install", release, str(CHART), "-n", ns, "-f", str(values))
    try:
        gw = wait_for(lambda: api.get("AIGateway", ns, "main"), what="the chart's AIGateway")
        assert gw["spec"]["image"] == "ghcr.io/aimm/ai-multimodel:0.1.0"
        hooks = [d for d in yaml.safe_load_all(helm(control_plane, "get", "hooks", release, "-n", ns).stdout) if d]
        (pod,) = [h for h in hooks if h["kind"] == "Pod"]
        assert pod["metadata"]["annotations"]["helm.sh/hook"] == "test"
        assert pod["spec"]["containers"][0]["env"][0] == {"name": "AIMM_URL", "value": f"http://main.{ns}.svc:80"}

        with gateway_process(api, ns, "main", tmp_path) as url:
            res = run_test_pod(api, ns, pod, url)
            assert res.returncode == 0, res.stdout + res.stderr
            assert f"ok {url}/ready" in res.stdout and "/v1/models: mock-fast" in res.stdout
            bad = run_test_pod(api, ns, pod, url, AIMM_API_KEY="sk-wrong")
            assert bad.returncode != 0 and "FAIL" in bad.stderr and "401" in bad.stderr
    finally:
        helm(control_plane, "uninstall", release, "-n", ns, "--wait", "--timeout=60s")
    # With the operator still running, the AIGateway's finalizer is released and it goes away.
    wait_for(lambda: api.get("AIGateway", ns, "main") is None, timeout=30, what="AIGateway deleted")
    assert json.dumps(api.get("AIModel", ns, "mock-fast"))  # resources outside the chart stay
