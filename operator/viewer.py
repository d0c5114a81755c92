"""The operator's own viewer key for one gateway: how it reads /api/v1/stats and /api/v1/budgets
now that those feeds require the viewer role (docs/security.md).

The key is random, made once and kept in a Secret `<gateway>-operator-viewer` owned by the
AIGateway (garbage-collected with it). The config references it as an env variable filled from that
Secret, so the key is only ever in the Secret, the pod's env and the operator's memory for one poll.
"""

from __future__ import annotations

import base64
import secrets

from aimm_operator.compile import VIEWER_DATA_KEY, viewer_secret_name
from aimm_operator.kube import RESOURCES, Kube, KubeError, resource_path
from aimm_operator.objects import Gateway
from aimm_operator.render import labels, owner_reference

KEY_PREFIX = "sk-aimm-operator-"


def secret_manifest(gw: Gateway, key: str) -> dict[str, object]:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {
            "name": viewer_secret_name(gw.name),
            "namespace": gw.namespace,
            "labels": labels(gw),
            "ownerReferences": [owner_reference(gw)],
        },
        "type": "Opaque",
        "stringData": {VIEWER_DATA_KEY: key},
    }


async def ensure_secret(kube: Kube, gw: Gateway) -> None:
    """Create the Secret once; an existing one is kept as it is (its key never changes under the pods)."""
    if await kube.get("Secret", gw.namespace, viewer_secret_name(gw.name)) is not None:
        return
    api_version, plural = RESOURCES["Secret"]
    try:
        key = KEY_PREFIX + secrets.token_urlsafe(32)
        await kube.request("POST", resource_path(api_version, plural, gw.namespace), body=secret_manifest(gw, key))
    except KubeError as exc:
        if exc.status != 409:  # 409: made meanwhile by another reconcile; theirs is kept
            raise


async def read_key(kube: Kube, namespace: str, gateway: str) -> str | None:
    """The key to send as a bearer when polling, or None (not created yet, or unreadable)."""
    try:
        secret = await kube.get("Secret", namespace, viewer_secret_name(gateway))
    except KubeError:
        return None
    value = ((secret or {}).get("data") or {}).get(VIEWER_DATA_KEY)
    return base64.b64decode(value).decode() if value else None
