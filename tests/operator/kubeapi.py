"""Small synchronous helpers the operator tests use to read and write the real API server."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import httpx
import yaml

from aimm_operator.credentials import Credentials, load_credentials
from aimm_operator.kube import RESOURCES, _ssl_context, resource_path

T = TypeVar("T")


class Api:
    """Admin access to the test cluster (plain dicts in and out)."""

    def __init__(self, kubeconfig: Path | str) -> None:
        self.creds: Credentials = load_credentials(str(kubeconfig))
        self.client = httpx.Client(base_url=self.creds.server, verify=_ssl_context(self.creds), timeout=30)

    def _headers(self, content_type: str | None = None) -> dict[str, str]:
        h = {"Accept": "application/json"}
        token = self.creds.bearer()
        if token:
            h["Authorization"] = f"Bearer {token}"
        if content_type:
            h["Content-Type"] = content_type
        return h

    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        params: dict | None = None,
        content_type: str = "application/json",
    ) -> httpx.Response:
        content = json.dumps(body) if body is not None else None
        return self.client.request(
            method,
            path,
            content=content,
            params=params,
            headers=self._headers(content_type if body is not None else None),
        )

    def get(self, kind: str, namespace: str | None, name: str) -> dict | None:
        api_version, plural = RESOURCES[kind]
        r = self.request("GET", resource_path(api_version, plural, namespace, name))
        if r.status_code == 404:
            return None
        r.raise_for_status()
        return r.json()

    def list(self, kind: str, namespace: str | None, selector: str | None = None) -> list[dict]:
        api_version, plural = RESOURCES[kind]
        r = self.request(
            "GET",
            resource_path(api_version, plural, namespace),
            params={"labelSelector": selector} if selector else None,
        )
        r.raise_for_status()
        return r.json()["items"]

    def apply(self, manifest: dict | str, manager: str = "aimm-tests") -> dict:
        docs = [manifest] if isinstance(manifest, dict) else [d for d in yaml.safe_load_all(manifest) if d]
        out = {}
        for doc in docs:
            kind = doc["kind"]
            api_version, plural = RESOURCES[kind]
            meta = doc["metadata"]
            r = self.request(
                "PATCH",
                resource_path(api_version, plural, meta.get("namespace"), meta["name"]),
                doc,
                params={"fieldManager": manager, "force": "true"},
                content_type="application/apply-patch+yaml",
            )
            if r.status_code >= 400:
                raise AssertionError(f"apply {kind}/{meta['name']} failed: {r.status_code} {r.text}")
            out = r.json()
        return out

    def merge_patch(self, kind: str, namespace: str, name: str, patch: dict) -> dict:
        api_version, plural = RESOURCES[kind]
        r = self.request(
            "PATCH",
            resource_path(api_version, plural, namespace, name),
            patch,
            content_type="application/merge-patch+json",
        )
        r.raise_for_status()
        return r.json()

    def delete(self, kind: str, namespace: str | None, name: str) -> None:
        api_version, plural = RESOURCES[kind]
        r = self.request("DELETE", resource_path(api_version, plural, namespace, name))
        if r.status_code not in (200, 202, 404):
            r.raise_for_status()

    def create_namespace(self, name: str, labels: dict[str, str] | None = None) -> None:
        r = self.request(
            "POST",
            "/api/v1/namespaces",
            {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name, "labels": labels or {}}},
        )
        r.raise_for_status()

    def create_secret(self, namespace: str, name: str, data: dict[str, str]) -> None:
        r = self.request(
            "POST",
            f"/api/v1/namespaces/{namespace}/secrets",
            {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name}, "stringData": data},
        )
        r.raise_for_status()

    def condition(self, obj: dict | None, ctype: str) -> dict | None:
        if not obj:
            return None
        return next((c for c in (obj.get("status") or {}).get("conditions") or [] if c["type"] == ctype), None)


class ConditionWatch:
    """The conditions of every object of one kind in a namespace, kept current by a watch in a
    thread (cheap next to listing them all in a loop, and nothing is missed between polls).
    `reasons` keeps each object's successive Ready reasons. Each watch request ends after 5 s and
    resumes from the last resourceVersion, so `stop()` takes effect within seconds."""

    def __init__(self, api: Api, kind: str, namespace: str) -> None:
        api_version, plural = RESOURCES[kind]
        self._api, self._path = api, resource_path(api_version, plural, namespace)
        self.conditions: dict[str, dict[str, str]] = {}  # name -> {type: status}
        self.reasons: dict[str, list[str]] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> ConditionWatch:
        listed = self._api.request("GET", self._path, params={"limit": "1"}).json()
        self._rv = listed["metadata"]["resourceVersion"]
        self._thread.start()
        return self

    def __exit__(self, *_: Any) -> None:
        self._stop.set()
        self._thread.join(15)

    def count(self, ctype: str, status: str) -> int:
        return sum(1 for conds in list(self.conditions.values()) if conds.get(ctype) == status)

    def _run(self) -> None:
        while not self._stop.is_set():
            params = {"watch": "true", "timeoutSeconds": "5", "resourceVersion": self._rv}
            with self._api.client.stream("GET", self._path, params=params, headers=self._api._headers()) as resp:
                for line in resp.iter_lines():
                    if line:
                        self._see(json.loads(line))

    def _see(self, event: dict) -> None:
        obj = event["object"]
        self._rv = obj["metadata"]["resourceVersion"]
        if event["type"] not in ("ADDED", "MODIFIED"):
            return
        name = obj["metadata"]["name"]
        conds = (obj.get("status") or {}).get("conditions") or []
        self.conditions[name] = {c["type"]: c["status"] for c in conds}
        ready = self._api.condition(obj, "Ready")
        history = self.reasons.setdefault(name, [])
        if ready is not None and (not history or history[-1] != ready["reason"]):
            history.append(ready["reason"])


def wait_for(predicate: Callable[[], T], timeout: float = 20.0, interval: float = 0.1, what: str = "") -> T:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what or predicate}; last value: {last!r}")


def host_ip() -> str:
    """A non-loopback address of this machine (EndpointSlices reject loopback addresses)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.connect(("192.0.2.123", 9))  # no packet is sent for UDP connect
            ip = s.getsockname()[0]
        except OSError:
            ip = "127.0.0.1"
    if ip.startswith("127."):
        ip = socket.gethostbyname(socket.gethostname())
    return ip


def wait_condition(
    api: Api,
    kind: str,
    ns: str,
    name: str,
    ctype: str = "Ready",
    status: str = "True",
    timeout: float = 15,
    reason: str | None = None,
) -> dict:
    """Wait until the object's condition `ctype` has `status` (and `reason`); returns the object."""

    def check() -> dict | None:
        obj = api.get(kind, ns, name)
        c = api.condition(obj, ctype)
        ok = c is not None and c["status"] == status and (reason is None or c["reason"] == reason)
        return obj if ok else None

    return wait_for(check, timeout, what=f"{kind} {ns}/{name} {ctype}={status} {reason or ''}")
