"""On the real control plane, with a gateway process standing in for the pod (tests/operator/pods.py):
a provider key rotated in its Secret reaches the running process without a restart or a rollout,
and an AIModel edit in a thousand-model namespace reaches the serving pod by a reload during
which every request is answered.

How long a reload may hold the pod's event loop is bounded in tests/gateway/test_reload_off_loop.py
(a loop ticker in-process, where a machine this busy cannot blur it) and measured, the longest
request stall under load, by `make bench-operator`.
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from starlette.types import Receive, Scope, Send

from aimm_gateway.mock.faults import FaultSettings
from aimm_gateway.mock.server import create_mock_app
from tests.operator.conftest import OperatorProcess
from tests.operator.kubeapi import Api, wait_condition, wait_for
from tests.operator.manifests import gateway, model
from tests.operator.pods import GatewayPod, compiled_config, config_bytes, mount_key_secrets, sync_config
from tests.servers import run_asgi_app

CLIENT_KEY = "sk-aimm-reload-client"
MODELS = 1000


class KeysSeen:
    """The mock provider, noting the key each request to it carried."""

    def __init__(self) -> None:
        self.app = create_mock_app("openai", FaultSettings(), require_auth=True)
        self.keys: list[str] = []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            self.keys += [v.decode() for k, v in scope["headers"] if k == b"authorization"]
        await self.app(scope, receive, send)


def _chat(pod: GatewayPod, target: str, client: httpx.Client | None = None) -> httpx.Response:
    body = {"model": target, "messages": [{"role": "user", "content": "hello"}]}
    headers = {"Authorization": f"Bearer {CLIENT_KEY}"}
    if client is not None:
        return client.post(f"{pod.url}/v1/chat/completions", json=body, headers=headers)
    return httpx.post(f"{pod.url}/v1/chat/completions", json=body, headers=headers, timeout=10)


def test_a_rotated_provider_key_reaches_the_running_pod_without_a_rollout(
    api: Api, running: OperatorProcess, ns: str, tmp_path: Path
) -> None:
    upstream = KeysSeen()
    with run_asgi_app(upstream) as upstream_url:
        api.create_secret(ns, "llm-keys", {"upstream": "sk-before"})
        api.create_secret(ns, "gw-auth", {"key": CLIENT_KEY})
        spec: dict[str, Any] = {
            "provider": "openai_compatible",
            "upstream": "mock-gpt",
            "endpoint": f"{upstream_url}/v1",
            "apiKeySecretRef": {"name": "llm-keys", "key": "upstream"},
        }
        api.apply(model(ns, "echo", **spec))
        api.apply(gateway(ns, "gw", auth={"apiKeySecretRef": {"name": "gw-auth", "key": "key"}}))
        pod = GatewayPod(api, ns, "gw", "gw-pod-0", tmp_path / "workdir")
        try:
            pod.start()
            assert pod.proc is not None
            pid = pod.proc.pid
            assert _chat(pod, "echo").status_code == 200 and upstream.keys[-1] == "Bearer sk-before"
            deployment = api.get("Deployment", ns, "gw")
            assert deployment is not None
            generation = deployment["metadata"]["generation"]
            config = config_bytes(api.get("ConfigMap", ns, "gw-config") or {})
            assert b"sk-before" not in config  # the key is a file the config names, never its value

            # Rotated in the API server; the kubelet refreshes the mounted volume (an atomic swap).
            api.merge_patch("Secret", ns, "llm-keys", {"stringData": {"upstream": "sk-after"}})
            mount_key_secrets(api, ns, deployment, pod.workdir)
            wait_for(
                lambda: _chat(pod, "echo").status_code == 200 and upstream.keys[-1] == "Bearer sk-after",
                timeout=15,
                what="the upstream called with the rotated key",
            )
            assert pod.proc.poll() is None and pod.proc.pid == pid  # the same process: no restart
            after = api.get("Deployment", ns, "gw")
            assert after is not None and after["metadata"]["generation"] == generation  # no rollout
            assert config_bytes(api.get("ConfigMap", ns, "gw-config") or {}) == config

            # A second model on a new key of the same Secret: no rollout either.
            api.merge_patch("Secret", ns, "llm-keys", {"stringData": {"second": "sk-second"}})
            api.apply(model(ns, "echo2", **{**spec, "apiKeySecretRef": {"name": "llm-keys", "key": "second"}}))
            wait_for(lambda: b"echo2" in config_bytes(api.get("ConfigMap", ns, "gw-config") or {}), what="echo2")
            mount_key_secrets(api, ns, deployment, pod.workdir)
            sync_config(api, pod)
            wait_for(
                lambda: _chat(pod, "echo2").status_code == 200 and upstream.keys[-1] == "Bearer sk-second",
                timeout=15,
                what="the new model called with its key",
            )
            after = api.get("Deployment", ns, "gw")
            assert after is not None and after["metadata"]["generation"] == generation
            assert pod.proc.pid == pid
        finally:
            pod.stop()


@dataclass
class Call:
    started: float
    ended: float
    status: int


def _load(pod: GatewayPod, stop: threading.Event, calls: list[Call]) -> None:
    """One request after another, each timed, until `stop`."""
    with httpx.Client(timeout=30) as client:
        while not stop.is_set():
            started = time.perf_counter()
            status = _chat(pod, "m-0", client).status_code
            calls.append(Call(started, time.perf_counter(), status))


def _config(api: Api, ns: str) -> dict[str, Any]:
    cm = api.get("ConfigMap", ns, "gw-config")
    return compiled_config(cm) if cm else {}


def _hash(pod: GatewayPod) -> str | None:
    try:
        return str(httpx.get(f"{pod.url}/ready", timeout=5).json()["config_hash"])
    except httpx.HTTPError:
        return None


def test_an_edit_among_a_thousand_models_reaches_the_pod_while_it_keeps_serving(
    api: Api, running: OperatorProcess, ns: str, tmp_path: Path
) -> None:
    api.create_secret(ns, "gw-auth", {"key": CLIENT_KEY})
    api.apply(gateway(ns, "gw", auth={"apiKeySecretRef": {"name": "gw-auth", "key": "key"}}))
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(api.apply, (model(ns, f"m-{i}") for i in range(MODELS))))
    wait_for(lambda: len(_config(api, ns).get("models", ())) == MODELS, timeout=120, what=f"{MODELS} models")
    pod = GatewayPod(api, ns, "gw", "gw-pod-0", tmp_path / "workdir")
    stop = threading.Event()
    calls: list[Call] = []
    load = threading.Thread(target=_load, args=(pod, stop, calls), daemon=True)
    try:
        pod.start(ready_timeout=60)
        wait_condition(api, "AIModel", ns, "m-1", "Ready", "True", timeout=60)
        before = _hash(pod)
        load.start()
        wait_for(lambda: len(calls) >= 20, what="the load running")
        served = _config(api, ns)
        api.apply(model(ns, "m-1", weight=5))  # one edit: the operator rewrites the whole config
        wait_for(lambda: _config(api, ns) != served, what="the edit in the ConfigMap")
        wait_condition(api, "AIModel", ns, "m-1", "Ready", "False", reason="ConfigNotLoaded")
        reload_started = time.perf_counter()
        sync_config(api, pod)  # the kubelet refreshes the file; SIGHUP: the gateway reloads now
        wait_for(lambda: _hash(pod) not in (None, before), timeout=30, interval=0.002, what="the new config served")
        reloaded = time.perf_counter()
        edited = wait_condition(api, "AIModel", ns, "m-1", "Ready", "True", timeout=60)
        assert api.condition(edited, "Ready")["observedGeneration"] == 2  # type: ignore[index]
    finally:
        stop.set()
        load.join(30)
        pod.stop()
    assert calls and all(c.status == 200 for c in calls), {c.status for c in calls}
    during = [c for c in calls if c.started >= reload_started and c.ended <= reloaded]
    longest = max(c.ended - c.started for c in calls if c.ended >= reload_started and c.started <= reloaded)
    window = f"reload window {reloaded - reload_started:.3f} s, longest call in it {longest:.3f} s"
    assert len(during) >= 3, (len(during), window)  # answered while the new config was read and built
