"""Server-side apply, status apply, deletes and Events: every write the operator makes.

All writes go through server-side apply under the field manager `aimm-operator` (statuses fed by
the stats poller use `aimm-operator-stats`, so the two writers own disjoint fields and conditions
merge by type instead of overwriting each other). Retriable failures, 409 Conflict included, are
retried by the client (`Kube.request`) and never fatal.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from aimm_operator.kube import RESOURCES, Kube, KubeError, resource_path

log = logging.getLogger("aimm_operator.apply")

MANAGER = "aimm-operator"
STATS_MANAGER = "aimm-operator-stats"
HANDOVER_MANAGER = "aimm-operator-handover"
APPLY_CONTENT_TYPE = "application/apply-patch+yaml"  # JSON is YAML


def _path(manifest: Mapping[str, Any], subresource: str | None = None) -> str:
    kind = manifest["kind"]
    _, plural = RESOURCES[kind]
    meta = manifest["metadata"]
    return resource_path(manifest["apiVersion"], plural, meta.get("namespace"), meta["name"], subresource)


async def apply(
    kube: Kube,
    manifest: Mapping[str, Any],
    *,
    manager: str = MANAGER,
    force: bool = True,
    subresource: str | None = None,
) -> dict[str, Any]:
    """Server-side apply `manifest`; returns the object as stored. force: we are the authority."""
    params = {"fieldManager": manager, "force": "true" if force else "false"}
    return await kube.request(
        "PATCH", _path(manifest, subresource), body=manifest, params=params, content_type=APPLY_CONTENT_TYPE
    )


async def apply_status(
    kube: Kube, kind: str, namespace: str, name: str, status: Mapping[str, Any], *, manager: str = MANAGER
) -> dict[str, Any] | None:
    """Apply the status fields this manager owns; None when the object is gone."""
    api_version, _ = RESOURCES[kind]
    body = {
        "apiVersion": api_version,
        "kind": kind,
        "metadata": {"name": name, "namespace": namespace},
        "status": dict(status),
    }
    try:
        return await apply(kube, body, manager=manager, subresource="status")
    except KubeError as exc:
        if exc.status == 404:
            return None
        raise


async def delete(kube: Kube, kind: str, namespace: str, name: str) -> bool:
    """Delete if present; True when something was deleted."""
    api_version, plural = RESOURCES[kind]
    try:
        await kube.request(
            "DELETE",
            resource_path(api_version, plural, namespace, name),
            body={"kind": "DeleteOptions", "apiVersion": "v1", "propagationPolicy": "Background"},
        )
    except KubeError as exc:
        if exc.status == 404:
            return False
        raise
    return True


def owns_field(managed_fields: Any, manager: str, path: tuple[str, ...]) -> bool:
    """Whether `manager` owns the field at `path` (e.g. ("spec", "replicas")) in managedFields."""
    for entry in managed_fields or []:
        if entry.get("manager") != manager:
            continue
        node = entry.get("fieldsV1") or {}
        for part in path:
            node = node.get(f"f:{part}") if isinstance(node, dict) else None
            if node is None:
                break
        else:
            return True
    return False


async def hand_replicas_to_hpa(kube: Kube, namespace: str, name: str) -> None:
    """Before we stop setting Deployment spec.replicas, hand the field over so it is not reset.

    If our manager owns spec.replicas (autoscaling was off) and the next apply omits it, the
    server would delete the field and the Deployment would drop to one pod until the HPA reacts.
    A separate manager applies the current value first, so the field survives for the HPA.
    """
    live = await kube.get("Deployment", namespace, name)
    if live is None or not owns_field(live["metadata"].get("managedFields"), MANAGER, ("spec", "replicas")):
        return
    replicas = (live.get("spec") or {}).get("replicas")
    if replicas is None:
        return
    body = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"replicas": replicas},
    }
    await apply(kube, body, manager=HANDOVER_MANAGER)


async def emit_event(kube: Kube, involved: Mapping[str, Any], type_: str, reason: str, message: str) -> None:
    """Record a core/v1 Event on `involved` (an object reference). Failures are logged, not raised."""
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    namespace = involved.get("namespace") or "default"
    body = {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"name": f"{involved.get('name')}.{secrets.token_hex(8)}", "namespace": namespace},
        "involvedObject": dict(involved),
        "type": type_,
        "reason": reason,
        "message": message[:1024],
        "source": {"component": MANAGER},
        "reportingComponent": MANAGER,
        "reportingInstance": MANAGER,
        "firstTimestamp": now,
        "lastTimestamp": now,
        "count": 1,
    }
    try:
        await kube.request("POST", resource_path("v1", "events", namespace), body=body, retry=False)
    except KubeError as exc:
        level = logging.DEBUG if exc.namespace_terminating else logging.WARNING  # expected while it goes
        log.log(level, "event %s on %s/%s not recorded: %s", reason, involved.get("kind"), involved.get("name"), exc)
