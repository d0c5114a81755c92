"""End to end: a gateway process started from the operator's ConfigMap serves a request to a mock
provider, and the AIModel's status shows the traffic.

There is no kubelet here, so the test plays its part (tests/operator/pods.py).
"""

from __future__ import annotations

from pathlib import Path

import httpx

from aimm_gateway.mock.faults import FaultSettings
from aimm_gateway.mock.server import create_mock_app
from tests.operator.kubeapi import Api, wait_condition, wait_for
from tests.operator.manifests import gateway, model, policy, route
from tests.operator.pods import GatewayPod, sync_config
from tests.servers import run_asgi_app

CLIENT_KEY = "sk-aimm-e2e-client"
UPSTREAM_KEY = "sk-upstream-e2e"


def test_gateway_from_configmap_serves_and_status_shows_traffic(api: Api, running, ns: str, tmp_path: Path) -> None:
    with run_asgi_app(create_mock_app("openai", FaultSettings(), require_auth=True)) as upstream_url:
        api.create_secret(ns, "llm-keys", {"upstream": UPSTREAM_KEY})
        api.create_secret(ns, "gw-auth", {"key": CLIENT_KEY})
        echo_spec = {
            "provider": "openai_compatible",
            "upstream": "mock-gpt",
            "endpoint": f"{upstream_url}/v1",
            "apiKeySecretRef": {"name": "llm-keys", "key": "upstream"},
            "pricing": {"inputPer1k": 0.5, "outputPer1k": 1.0},
        }
        api.apply(model(ns, "echo", **echo_spec))
        api.apply(policy(ns, "rp", [route("smart", "echo")]))
        api.apply(gateway(ns, "gw", auth={"apiKeySecretRef": {"name": "gw-auth", "key": "key"}}))

        pod = GatewayPod(api, ns, "gw", "gw-pod-0", tmp_path / "workdir")
        try:
            pod.start()
            assert pod.env["AIMM_API_KEY"] == CLIENT_KEY  # resolved from the Deployment's secretKeyRef
            assert (pod.workdir / "keys" / "llm-keys" / "upstream").read_text() == UPSTREAM_KEY
            local = pod.url
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
            # Polled with the operator's own viewer key: the feeds are closed to callers without one.
            assert httpx.get(f"{local}/api/v1/stats", timeout=5).status_code == 401
            assert httpx.get(f"{local}/api/v1/budgets", timeout=5).status_code == 401
            viewer = api.get("Secret", ns, "gw-operator-viewer")
            assert viewer["metadata"]["ownerReferences"][0]["kind"] == "AIGateway"
            op_key = pod.env["AIMM_OPERATOR_KEY"]
            assert len(op_key) > 32 and op_key not in str(api.get("ConfigMap", ns, "gw-config"))
            bearer = {"Authorization": f"Bearer {op_key}"}
            assert httpx.get(f"{local}/api/v1/stats", headers=bearer, timeout=5).status_code == 200
            denied = httpx.post(f"{local}/v1/chat/completions", headers=bearer, json={"model": "echo", "messages": []})
            assert denied.status_code == 403  # a viewer key reads stats; it cannot spend
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

            # Honest readiness: an edit is Ready only once the pod serves a config holding it.
            wait_condition(api, "AIModel", ns, "echo", "Ready", "True", reason="Accepted")
            api.apply(model(ns, "echo", weight=5, **echo_spec))
            echo = wait_condition(api, "AIModel", ns, "echo", "Ready", "False", reason="ConfigNotLoaded")
            assert echo["metadata"]["generation"] == 2 and "0 of 1 pods" in api.condition(echo, "Ready")["message"]
            assert api.condition(echo, "Reconciling")["status"] == "True"
            sync_config(api, pod)  # the kubelet refreshes the mounted ConfigMap; the gateway reloads
            echo = wait_condition(api, "AIModel", ns, "echo", "Ready", "True", reason="Accepted")
            assert api.condition(echo, "Ready")["observedGeneration"] == 2
        finally:
            pod.stop()
