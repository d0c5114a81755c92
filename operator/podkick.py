"""A new config reaches a gateway's pods in a second, not at the kubelet's next sync.

The kubelet refreshes a mounted ConfigMap when it syncs the pod: periodically (about a minute by
default), or at once when the pod object changes. So after a gateway's ConfigMap changed, the
operator sets one annotation on each of that gateway's pods (`aimm.io/config-hash`: the hash the
pod should now serve); the kubelet syncs the pod, swaps the mounted file, and the gateway's file
watcher reloads it. This is the refresh the Kubernetes documentation describes for mounted
ConfigMaps ("trigger an immediate refresh by updating one of the pod's annotations"). The pod
template is never touched, so nothing rolls.

The pods are the gateway Service's EndpointSlice targets (the list the stats poll reads anyway):
the operator needs `patch` on pods and nothing else about them. A failure here costs only speed
(the kubelet's periodic sync still delivers the config), so it is logged, never raised.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable, Mapping
from typing import Any

from aimm_operator import render
from aimm_operator.kube import RESOURCES, Kube, KubeError, resource_path

log = logging.getLogger("aimm_operator.podkick")

ANNOTATION = "aimm.io/config-hash"
MERGE_PATCH = "application/merge-patch+json"
CONCURRENCY = 16


def pod_names(slices: Iterable[Mapping[str, Any]]) -> list[str]:
    """The pods behind a Service's EndpointSlices, ready or not (a pod still starting reads its
    config at start; one that is not ready for another reason should get the new one too)."""
    names = {
        ref["name"]
        for sl in slices
        for ep in sl.get("endpoints") or []
        if (ref := ep.get("targetRef") or {}).get("kind") == "Pod" and ref.get("name")
    }
    return sorted(names)


async def kick_pods(kube: Kube, namespace: str, gateway: str, config_hash: str) -> int:
    """Annotate the gateway's pods with `config_hash`; returns how many were annotated."""
    service = render.names(gateway)["service"]
    try:
        slices = await kube.list("EndpointSlice", namespace, f"{render.SERVICE_NAME_LABEL}={service}")
    except KubeError as exc:
        log.warning("AIGateway %s/%s: pods not found for a config refresh: %s", namespace, gateway, exc)
        return 0
    names = pod_names(slices)
    gate = asyncio.Semaphore(CONCURRENCY)
    patch = {"metadata": {"annotations": {ANNOTATION: config_hash}}}

    async def one(name: str) -> bool:
        async with gate:
            try:
                path = resource_path(*RESOURCES["Pod"], namespace, name)
                await kube.request("PATCH", path, body=patch, content_type=MERGE_PATCH)
                return True
            except KubeError as exc:
                if exc.status != 404:  # a pod that is gone needs nothing
                    log.warning("pod %s/%s: no config refresh (%s); the kubelet's sync will do", namespace, name, exc)
                return False

    done = await asyncio.gather(*(one(n) for n in names))
    return sum(done)
