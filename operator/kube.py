"""A small async Kubernetes API client (aiohttp + orjson) with retries.

aiohttp, not httpx: converging a thousand AIModels is a thousand status writes, and the client's
CPU per request was ~4 ms with httpx (tests/bench/status_writes.py; docs/benchmarks.md, issue 15
fourth pass). kopf already depends on aiohttp.

Credentials (`aimm_operator.credentials`) are loaded once and shared with kopf's own login, so the
operator speaks to the API server as one identity.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import Any

import aiohttp
import orjson

from aimm_operator.credentials import Credentials

log = logging.getLogger("aimm_operator.kube")

RETRIABLE_STATUS = frozenset({409, 429, 500, 502, 503, 504})

# kind -> (apiVersion, plural) for everything the operator touches.
RESOURCES: dict[str, tuple[str, str]] = {
    "ServiceAccount": ("v1", "serviceaccounts"),
    "Pod": ("v1", "pods"),
    "ConfigMap": ("v1", "configmaps"),
    "Secret": ("v1", "secrets"),
    "Service": ("v1", "services"),
    "Event": ("v1", "events"),
    "Deployment": ("apps/v1", "deployments"),
    "HorizontalPodAutoscaler": ("autoscaling/v2", "horizontalpodautoscalers"),
    "PodDisruptionBudget": ("policy/v1", "poddisruptionbudgets"),
    "EndpointSlice": ("discovery.k8s.io/v1", "endpointslices"),
    "ServiceMonitor": ("monitoring.coreos.com/v1", "servicemonitors"),
    "PrometheusRule": ("monitoring.coreos.com/v1", "prometheusrules"),
    "AIGateway": ("aimm.io/v1alpha1", "aigateways"),
    "AIModel": ("aimm.io/v1alpha1", "aimodels"),
    "RoutingPolicy": ("aimm.io/v1alpha1", "routingpolicies"),
    "CostBudget": ("aimm.io/v1alpha1", "costbudgets"),
}


class KubeError(Exception):
    """An API call failed; `status` is the HTTP status (0 for a transport error)."""

    def __init__(self, status: int, reason: str, message: str) -> None:
        super().__init__(f"{status} {reason}: {message}")
        self.status = status
        self.reason = reason
        self.message = message

    @property
    def retriable(self) -> bool:
        return self.status == 0 or self.status in RETRIABLE_STATUS

    @property
    def permanent(self) -> bool:
        """The API server refused the request itself (invalid, too large, forbidden): retrying the
        same request cannot succeed, so it is retried only with a growing delay."""
        return 400 <= self.status < 500 and self.status not in (404, 408, 409, 429)

    @property
    def namespace_terminating(self) -> bool:
        """Writes into a namespace that is being deleted: nothing left to reconcile there."""
        return self.status == 403 and "is being terminated" in self.message


def _error(status: int, reason: str, raw: bytes) -> KubeError:
    """The API server's Status answer as a KubeError (its reason and message when it sent one)."""
    message = raw[:2000].decode(errors="replace")
    try:
        data = orjson.loads(raw)
        reason, message = data.get("reason") or reason, data.get("message") or message
    except orjson.JSONDecodeError:
        pass
    return KubeError(status, str(reason), str(message))


def _ssl_context(creds: Credentials) -> ssl.SSLContext | bool:
    if not creds.server.startswith("https"):
        return False
    ctx = ssl.create_default_context(cafile=creds.ca_path) if creds.ca_path else ssl.create_default_context()
    if creds.insecure:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    if creds.cert_path and creds.key_path:
        ctx.load_cert_chain(creds.cert_path, creds.key_path)
    return ctx


def split_api_version(api_version: str) -> tuple[str, str]:
    group, _, version = api_version.rpartition("/")
    return group, version


def resource_path(
    api_version: str,
    plural: str,
    namespace: str | None = None,
    name: str | None = None,
    subresource: str | None = None,
) -> str:
    group, version = split_api_version(api_version)
    path = f"/api/{version}" if not group else f"/apis/{group}/{version}"
    if namespace:
        path += f"/namespaces/{namespace}"
    path += f"/{plural}"
    if name:
        path += f"/{name}"
    if subresource:
        path += f"/{subresource}"
    return path


@dataclass(frozen=True)
class RetryPolicy:
    attempts: int = 6
    initial_s: float = 0.05
    max_s: float = 2.0

    def delays(self) -> list[float]:
        return [min(self.initial_s * 2**i, self.max_s) for i in range(self.attempts - 1)]


class Kube:
    """Async JSON calls to the API server. Retriable failures (409, 429, 5xx, transport) are retried.
    The HTTP session is made on first use, inside the running event loop (aiohttp binds it there)."""

    def __init__(self, creds: Credentials, *, timeout: float = 30.0, retry: RetryPolicy | None = None) -> None:
        self.creds = creds
        self.retry = retry or RetryPolicy()
        self._timeout = timeout
        self._session: aiohttp.ClientSession | None = None

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(ssl=_ssl_context(self.creds)),
                timeout=aiohttp.ClientTimeout(total=self._timeout),
                headers={"User-Agent": "aimm-operator", "Accept": "application/json"},
                cookie_jar=aiohttp.DummyCookieJar(),  # the API server sets none we need
            )
        return self._session

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def request(
        self,
        method: str,
        path: str,
        *,
        body: Any = None,
        params: Mapping[str, str] | None = None,
        content_type: str = "application/json",
        retry: bool = True,
    ) -> dict[str, Any]:
        delays = self.retry.delays() if retry else []
        for attempt in range(len(delays) + 1):
            try:
                return await self._once(method, path, body, params, content_type)
            except KubeError as exc:
                if not exc.retriable or attempt == len(delays):
                    raise
                log.info("retrying %s %s after %s (attempt %d)", method, path, exc, attempt + 1)
                await asyncio.sleep(delays[attempt])
        raise AssertionError("unreachable")

    async def _once(
        self, method: str, path: str, body: Any, params: Mapping[str, str] | None, content_type: str
    ) -> dict[str, Any]:
        headers = {}
        token = self.creds.bearer()
        if token:
            headers["Authorization"] = f"Bearer {token}"
        content = None
        if body is not None:
            headers["Content-Type"] = content_type
            content = orjson.dumps(body)
        url = self.creds.server + path
        try:
            async with self._http().request(method, url, data=content, params=params, headers=headers) as resp:
                status, reason, raw = resp.status, resp.reason or "", await resp.read()
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise KubeError(0, type(exc).__name__, str(exc) or repr(exc)) from exc
        if status >= 400:
            raise _error(status, reason, raw)
        if not raw:
            return {}
        data = orjson.loads(raw)
        return data if isinstance(data, dict) else {"items": data}

    async def stream(
        self, path: str, params: Mapping[str, str], *, read_timeout_s: float
    ) -> AsyncIterator[dict[str, Any]]:
        """The JSON lines of a watch, each parsed, until the server ends it. No total timeout: a
        watch lasts as long as the server lets it; a silent connection fails after read_timeout_s."""
        headers = {"Authorization": f"Bearer {token}"} if (token := self.creds.bearer()) else {}
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=10, sock_read=read_timeout_s)
        try:
            async with self._http().get(
                self.creds.server + path, params=params, headers=headers, timeout=timeout
            ) as resp:
                if resp.status >= 400:
                    raise _error(resp.status, resp.reason or "", await resp.read())
                pending = b""
                async for chunk in resp.content.iter_any():  # a line can be far longer than a chunk
                    pending += chunk
                    *lines, pending = pending.split(b"\n")
                    for line in lines:
                        if line.strip():
                            yield orjson.loads(line)
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise KubeError(0, type(exc).__name__, str(exc) or repr(exc)) from exc

    # ---------------------------------------------------------------- conveniences
    async def get(self, kind: str, namespace: str | None, name: str) -> dict[str, Any] | None:
        api_version, plural = RESOURCES[kind]
        try:
            return await self.request("GET", resource_path(api_version, plural, namespace, name))
        except KubeError as exc:
            if exc.status == 404:
                return None
            raise

    async def list(self, kind: str, namespace: str | None, label_selector: str | None = None) -> list[dict[str, Any]]:
        api_version, plural = RESOURCES[kind]
        params = {"labelSelector": label_selector} if label_selector else None
        data = await self.request("GET", resource_path(api_version, plural, namespace), params=params)
        items = list(data.get("items") or [])
        group_kind = data.get("kind", "").removesuffix("List")
        for item in items:  # list items carry no apiVersion/kind
            item.setdefault("apiVersion", api_version)
            item.setdefault("kind", group_kind or kind)
        return items

    async def served_kinds(self, api_version: str) -> frozenset[str]:
        """Kinds served under a group/version (discovery); empty when the group is not installed."""
        group, version = split_api_version(api_version)
        path = f"/apis/{group}/{version}" if group else f"/api/{version}"
        try:
            data = await self.request("GET", path)
        except KubeError as exc:
            if exc.status in (404, 503):
                return frozenset()
            raise
        return frozenset(r.get("kind", "") for r in data.get("resources", []) if "/" not in r.get("name", ""))
