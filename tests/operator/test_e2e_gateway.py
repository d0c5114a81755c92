"""End to end: a gateway process started from the operator's ConfigMap serves a request to a mock
provider, and the AIModel's status shows the traffic.

There is no kubelet here, so the test plays its part: it runs the container's command with the
ConfigMap's config.yaml, the env the Deployment declares and its key Secrets as files (read from
the Secrets, in the container's working directory), and
publishes the process in an EndpointSlice of the gateway Service, as the EndpointSlice controller
would for a ready pod.
"""

from __future__ import annotations

import base64
import os
import socket
import subprocess
import sys
from pathlib import Path

import httpx

from aimm_gateway.mock.faults import FaultSettings
from aimm_gateway.mock.server import create_mock_app
from tests.operator.kubeapi import Api, host_ip, wait_for
from tests.operator.manifests import gateway, model, policy, route
from tests.operator.statsserver import endpoint_slice
from tests.servers import run_asgi_app

CLIENT_KEY = "sk-aimm-e2e-client"
UPSTREAM_KEY = "sk-upstream-e2e"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("0.0.0.0", 0))
        return int(s.getsockname()[1])


def container_env(api: Api, ns: str, deployment: dict) -> dict[str, str]:
    """What the kubelet would put in the environment: each secretKeyRef resolved."""
    env = {}
    for item in deployment["spec"]["template"]["spec"]["containers"][0]["env"]:
        ref = item["valueFrom"]["secretKeyRef"]
        secret = api.request("GET", f"/api/v1/namespaces/{ns}/secrets/{ref['name']}").json()
        env[item["name"]] = base64.b64decode(secret["data"][ref["key"]]).decode()
    return env


def mount_key_secrets(api: Api, ns: str, deployment: dict, workdir: Path) -> None:
    """What the kubelet would mount: each Secret volume's keys as files under its mountPath."""
    pod = deployment["spec"]["template"]["spec"]
    container = pod["containers"][0]
    secrets = {v["name"]: v["secret"]["secretName"] for v in pod["volumes"] if "secret" in v}
    for mount in container["volumeMounts"]:
        if mount["name"] not in secrets:
            continue
        secret = api.request("GET", f"/api/v1/namespaces/{ns}/secrets/{secrets[mount['name']]}").json()
        folder = workdir / Path(mount["mountPath"]).relative_to(container["workingDir"])
        folder.mkdir(parents=True)
        for key, value in secret["data"].items():
            (folder / key).write_bytes(base64.b64decode(value))


def test_gateway_from_configmap_serves_and_status_shows_traffic(api: Api, running, ns: str, tmp_path: Path) -> None:
    with run_asgi_app(create_mock_app("openai", FaultSettings(), require_auth=True)) as upstream_url:
        api.create_secret(ns, "llm-keys", {"upstream": UPSTREAM_KEY})
        api.create_secret(ns, "gw-auth", {"key": CLIENT_KEY})
        api.apply(
            model(
                ns,
                "echo",
                provider="openai_compatible",
                upstream="mock-gpt",
                endpoint=f"{upstream_url}/v1",
                apiKeySecretRef={"name": "llm-keys", "key": "upstream"},
                pricing={"inputPer1k": 0.5, "outputPer1k": 1.0},
            )
        )
        api.apply(policy(ns, "rp", [route("smart", "echo")]))
        api.apply(gateway(ns, "gw", auth={"apiKeySecretRef": {"name": "gw-auth", "key": "key"}}))

        cm = wait_for(lambda: api.get("ConfigMap", ns, "gw-config"), what="ConfigMap")
        dep = wait_for(lambda: api.get("Deployment", ns, "gw"), what="Deployment")
        config_path = tmp_path / "config.yaml"
        config_path.write_text(cm["data"]["config.yaml"])  # small: readable JSON in `data`
        container = dep["spec"]["template"]["spec"]["containers"][0]
        port = free_port()
        command = container["command"]
        assert command[:3] == ["aimm", "gateway", "serve"]
        args = [sys.executable, "-c", "import sys; from aimm_gateway.cli import main; sys.exit(main())", *command[1:]]
        args[args.index("--config") + 1] = str(config_path)
        args[args.index("--port") + 1] = str(port)
        env = {**os.environ, **container_env(api, ns, dep)}
        assert env["AIMM_API_KEY"] == CLIENT_KEY
        workdir = tmp_path / "workdir"  # the container's workingDir, with the key Secrets mounted in it
        mount_key_secrets(api, ns, dep, workdir)
        assert (workdir / "keys" / "llm-keys" / "upstream").read_text() == UPSTREAM_KEY
        log = (tmp_path / "gateway.log").open("wb")
        proc = subprocess.Popen(args, env=env, stdout=log, stderr=subprocess.STDOUT, cwd=workdir)
        try:
            local = f"http://127.0.0.1:{port}"
            wait_for(lambda: _ready(local), timeout=20, what="gateway /ready")
            api.apply(endpoint_slice(ns, "gw", "gw-pod-0", host_ip(), port))

            headers = {"Authorization": f"Bearer {CLIENT_KEY}"}
            for target in ("echo", "smart"):
                r = httpx.post(
                    f"{local}/v1/chat/completions",
                    headers=headers,
                    timeout=10,
                    json={"model": target, "messages": [{"role": "user", "content": "hello"}]},
                )
                assert r.status_code == 200, r.text
                assert r.json()["choices"][0]["message"]["content"]
            r = httpx.post(f"{local}/v1/chat/completions", json={"model": "echo", "messages": []})
            assert r.status_code == 401  # auth wired from the AIGateway's Secret reference

            echo = wait_for(
                lambda: (m := api.get("AIModel", ns, "echo")) and (m["status"].get("requestsTotal") or 0) >= 2 and m,
                timeout=10,
                what="traffic in AIModel status",
            )
            st = echo["status"]
            assert st["circuitState"] == "closed" and st["errorRate"] == "0.00%"
            assert float(st["costThisPeriod"]) > 0 and st["p95LatencyMs"] >= 0
            assert api.condition(echo, "Available")["status"] == "True"
            # The pod reports which config it serves; the operator counts pods on the current one.
            gw = wait_for(
                lambda: (g := api.get("AIGateway", ns, "gw")) and g["status"].get("configReplicas") == 1 and g,
                what="the gateway process counted as serving the current config",
            )
            assert gw["status"]["configHash"]
            out = api.get("AIModel", ns, "echo")
            assert out["status"]["requestsTotal"] >= 2
        finally:
            proc.terminate()
            proc.wait(10)
            log.close()


def _ready(url: str) -> bool:
    try:
        return httpx.get(f"{url}/ready", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False
