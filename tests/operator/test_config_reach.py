"""AIModel edits reach a running gateway process: `rateLimits` change the limits it enforces
within 5 s (issue 9), and deleting most AIModels passes the gateway's reload guard.

A gateway process stands in for the pod (tests/operator/pods.py); `sync_config` plays the
kubelet refreshing the mounted ConfigMap.
"""

from __future__ import annotations

import time
from pathlib import Path

import httpx

from tests.operator.kubeapi import Api, wait_for
from tests.operator.manifests import gateway, model
from tests.operator.pods import GatewayPod, sync_config

CLIENT_KEY = "sk-aimm-reach-client"
HEADERS = {"Authorization": f"Bearer {CLIENT_KEY}"}


def chat(url: str, name: str) -> httpx.Response:
    body = {"model": name, "messages": [{"role": "user", "content": "hi"}]}
    return httpx.post(f"{url}/v1/chat/completions", headers=HEADERS, json=body, timeout=10)


def served_models(url: str) -> set[str]:
    r = httpx.get(f"{url}/v1/models", headers=HEADERS, timeout=5)
    r.raise_for_status()
    return {m["id"] for m in r.json()["data"]}


def reload_until(api: Api, pod: GatewayPod, check, timeout: float, what: str):  # type: ignore[no-untyped-def]
    """Refresh the pod's config file from the ConfigMap (the kubelet's part) until `check` holds."""

    def step():  # type: ignore[no-untyped-def]
        sync_config(api, pod)
        time.sleep(0.2)
        return check()

    return wait_for(step, timeout=timeout, interval=0.05, what=what)


def test_rate_limits_and_mass_deletion_reach_the_gateway(api: Api, running, ns: str, tmp_path: Path) -> None:
    api.create_secret(ns, "gw-auth", {"key": CLIENT_KEY})
    names = ["m0", "m1", "m2", "m3", "m4"]
    api.apply(model(ns, "m0", rateLimits={"requestsPerMinute": 100}))
    for name in names[1:]:
        api.apply(model(ns, name))
    api.apply(gateway(ns, "gw", auth={"apiKeySecretRef": {"name": "gw-auth", "key": "key"}}))
    wait_for(
        lambda: (
            (cm := api.get("ConfigMap", ns, "gw-config")) and all(f'"{n}"' in cm["data"]["config.yaml"] for n in names)
        ),
        what="every AIModel in the ConfigMap",
    )
    pod = GatewayPod(api, ns, "gw", "gw-pod-0", tmp_path / "workdir")
    try:
        pod.start()
        first = chat(pod.url, "m0")
        assert first.status_code == 200, first.text
        assert first.headers["x-ratelimit-limit-requests"] == "100"

        # Issue 9: a lower limit applied to the API server is enforced within 5 s.
        started = time.monotonic()
        api.apply(model(ns, "m0", rateLimits={"requestsPerMinute": 3}))
        r = reload_until(
            api,
            pod,
            lambda: (resp := chat(pod.url, "m0")).headers.get("x-ratelimit-limit-requests") == "3" and resp,
            timeout=5,
            what="the new limit enforced by the gateway",
        )
        assert time.monotonic() - started < 5
        statuses = [r.status_code] + [chat(pod.url, "m0").status_code for _ in range(4)]
        assert 429 in statuses and statuses.count(200) <= 3, statuses
        refused = chat(pod.url, "m0")
        assert refused.status_code == 429 and refused.json()["error"]["type"]
        assert refused.headers["x-ratelimit-limit-requests"] == "3"
        assert refused.headers["x-ratelimit-remaining-requests"] == "0" and refused.headers["retry-after"]
        assert chat(pod.url, "m1").status_code == 200  # the limit is m0's alone

        # Deleting 4 of 5 AIModels (80 %, past the gateway's 25 % reload guard) reaches the pod.
        for name in names[1:]:
            api.delete("AIModel", ns, name)
        reload_until(api, pod, lambda: served_models(pod.url) == {"m0"}, timeout=20, what="m1..m4 gone from the pod")
        assert chat(pod.url, "m2").status_code == 404
    finally:
        pod.stop()
