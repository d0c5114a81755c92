"""Gateway processes standing in for pods (there is no kubelet here), started from what the
operator rendered: the ConfigMap's config, the env the Deployment declares (each secretKeyRef
resolved), the key Secrets mounted as files in the container's working directory, and an
EndpointSlice for the gateway Service, as the EndpointSlice controller would make for a ready pod.
"""

from __future__ import annotations

import base64
import gzip
import math
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import orjson

from tests.kubelet_volumes import write_secret_volume
from tests.operator.kubeapi import Api, host_ip, wait_for
from tests.operator.statsserver import endpoint_slice


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("0.0.0.0", 0))
        return int(s.getsockname()[1])


def cpu_cores(quantity: str) -> float:
    return int(quantity[:-1]) / 1000 if quantity.endswith("m") else float(quantity)


def container_env(api: Api, ns: str, deployment: dict) -> dict[str, str]:
    """What the kubelet would put in the environment: values, each secretKeyRef resolved, and the
    downward API's requests.cpu (divisor 1: rounded up to whole cores) and metadata.namespace."""
    env = {}
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    for item in container.get("env") or []:
        if "value" in item:
            env[item["name"]] = item["value"]
        elif "fieldRef" in item["valueFrom"]:
            assert item["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.namespace"
            env[item["name"]] = ns
        elif "resourceFieldRef" in item["valueFrom"]:
            field = item["valueFrom"]["resourceFieldRef"]
            assert (field["containerName"], field["resource"], field["divisor"]) == ("gateway", "requests.cpu", "1")
            env[item["name"]] = str(math.ceil(cpu_cores(container["resources"]["requests"].get("cpu", "0"))))
        else:
            ref = item["valueFrom"]["secretKeyRef"]
            secret = api.request("GET", f"/api/v1/namespaces/{ns}/secrets/{ref['name']}").json()
            env[item["name"]] = base64.b64decode(secret["data"][ref["key"]]).decode()
    return env


def mount_key_secrets(api: Api, ns: str, deployment: dict, workdir: Path) -> None:
    """What the kubelet would mount, and later refresh: each Secret volume's keys as files under its
    mountPath, swapped in atomically (`tests/kubelet_volumes.py`)."""
    pod = deployment["spec"]["template"]["spec"]
    container = pod["containers"][0]
    secrets = {v["name"]: v["secret"]["secretName"] for v in pod.get("volumes") or [] if "secret" in v}
    for mount in container.get("volumeMounts") or []:
        if mount["name"] not in secrets:
            continue
        secret = api.request("GET", f"/api/v1/namespaces/{ns}/secrets/{secrets[mount['name']]}").json()
        folder = workdir / Path(mount["mountPath"]).relative_to(container["workingDir"])
        write_secret_volume(folder, {key: base64.b64decode(value) for key, value in secret["data"].items()})


def ready(url: str) -> bool:
    try:
        return httpx.get(f"{url}/ready", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


class GatewayPod:
    """One gateway process run from the gateway's rendered ConfigMap and Deployment."""

    def __init__(self, api: Api, ns: str, gateway: str, name: str, workdir: Path) -> None:
        self.api, self.ns, self.gateway, self.name, self.workdir = api, ns, gateway, name, workdir
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self.env: dict[str, str] = {}

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, publish: bool = True, ready_timeout: float = 30) -> GatewayPod:
        cm = wait_for(lambda: self.api.get("ConfigMap", self.ns, f"{self.gateway}-config"), what="ConfigMap")
        dep = wait_for(lambda: self.api.get("Deployment", self.ns, self.gateway), what="Deployment")
        self.workdir.mkdir(parents=True, exist_ok=True)
        config_path = self.workdir / "config.yaml"
        config_path.write_bytes(config_bytes(cm))
        container = dep["spec"]["template"]["spec"]["containers"][0]
        command = container["command"]
        assert command[:3] == ["aimm", "gateway", "serve"]
        args = [sys.executable, "-c", "import sys; from aimm_gateway.cli import main; sys.exit(main())", *command[1:]]
        args[args.index("--config") + 1] = str(config_path)
        args[args.index("--port") + 1] = str(self.port)
        self.env = container_env(self.api, self.ns, dep)
        mount_key_secrets(self.api, self.ns, dep, self.workdir)
        log = (self.workdir / "gateway.log").open("ab")
        self.proc = subprocess.Popen(
            args, env={**os.environ, **self.env}, stdout=log, stderr=subprocess.STDOUT, cwd=self.workdir
        )
        log.close()
        wait_for(lambda: ready(self.url), timeout=ready_timeout, what=f"gateway {self.name} /ready")
        if publish:
            self.api.apply(endpoint_slice(self.ns, self.gateway, self.name, host_ip(), self.port))
        return self

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(15)

    def get(self, path: str) -> Any:
        """GET as the operator does: with its viewer key (the stats feeds need the viewer role)."""
        r = httpx.get(
            f"{self.url}{path}", headers={"Authorization": f"Bearer {self.env['AIMM_OPERATOR_KEY']}"}, timeout=5
        )
        r.raise_for_status()
        return r.json()


def config_bytes(cm: dict) -> bytes:
    """The config file as the kubelet mounts it: readable JSON from `data`, or a large config's
    gzip from `binaryData` (the gateway reads both)."""
    if "binaryData" in cm:
        return base64.b64decode(cm["binaryData"]["config.yaml"])
    return str(cm["data"]["config.yaml"]).encode()


def compiled_config(cm: dict) -> dict[str, Any]:
    """The config the operator compiled into the ConfigMap, decoded (a large one is gzipped)."""
    data = config_bytes(cm)
    return dict(orjson.loads(gzip.decompress(data) if data[:2] == b"\x1f\x8b" else data))


def sync_config(api: Api, pod: GatewayPod) -> None:
    """What the kubelet does some time after a ConfigMap edit: the mounted file changes (and the
    gateway reloads it; SIGHUP makes that immediate)."""
    cm = api.get("ConfigMap", pod.ns, f"{pod.gateway}-config")
    (pod.workdir / "config.yaml").write_bytes(config_bytes(cm))
    if pod.proc is not None:
        pod.proc.send_signal(signal.SIGHUP)
