"""What one `/status` write costs: by client, server-side apply against a JSON merge patch, by concurrency.

A fresh control plane (tests/k8s_harness.py), N AIModels, then rounds of N status writes (three
conditions each), alternating the operator's own client (`aimm_operator.kube.Kube`, aiohttp) with the
httpx client it replaced (`HttpxKube` below, kept here for the comparison), and the two methods.
Per round: wall time, writes/s, this process's CPU (the client's share) and kube-apiserver + etcd
CPU. Used for docs/benchmarks.md (issue 15, third and fourth passes).

    python -P -m tests.bench.status_writes [--n 1000] [--rounds default|clients]
"""

from __future__ import annotations

import argparse
import asyncio
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import orjson

from aimm_operator.apply import apply_status
from aimm_operator.kube import Kube, KubeError, _ssl_context, load_credentials, resource_path
from aimm_operator.status import condition
from tests.bench.operator_scale import cpu_of
from tests.k8s_harness import ControlPlane
from tests.operator.kubeapi import Api
from tests.operator.manifests import model

REPO = Path(__file__).resolve().parents[2]
ROUNDS = {
    "default": [("aiohttp", "apply", 32), ("httpx", "apply", 32), ("aiohttp", "merge", 32), ("httpx", "merge", 32)] * 2,
    "clients": [("aiohttp", "apply", 32), ("httpx", "apply", 32)] * 3,
}


class HttpxKube(Kube):
    """The operator's client before issue 15's fourth pass (httpx), for the comparison only."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._httpx = httpx.AsyncClient(
            base_url=self.creds.server,
            verify=_ssl_context(self.creds),
            timeout=30.0,
            headers={"User-Agent": "aimm-operator", "Accept": "application/json"},
        )

    async def aclose(self) -> None:
        await self._httpx.aclose()
        await super().aclose()

    async def _once(
        self, method: str, path: str, body: Any, params: Any, content_type: str
    ) -> dict[str, Any]:  # as main had it
        headers = {"Authorization": f"Bearer {self.creds.bearer()}"} if self.creds.bearer() else {}
        content = None
        if body is not None:
            headers["Content-Type"] = content_type
            content = orjson.dumps(body)
        resp = await self._httpx.request(method, path, content=content, params=params, headers=headers)
        if resp.status_code >= 400:
            raise KubeError(resp.status_code, resp.reason_phrase, resp.text[:2000])
        data = orjson.loads(resp.content) if resp.content else {}
        return data if isinstance(data, dict) else {"items": data}


def status(round_no: int) -> dict[str, Any]:
    """A model's status as the operator writes it; each round changes it, so every write is real."""
    conds = [
        condition("Ready", True, f"Round{round_no}", f"in the config of AIGateway(s) gw ({round_no})", 1),
        condition("Reconciling", False, "Done", "", 1),
        condition("Stalled", False, "Fine", "", 1),
    ]
    for c in conds:
        c["lastTransitionTime"] = "2026-11-30T23:00:00Z"
    return {"observedGeneration": 1, "conditions": conds, "gateways": ["gw"]}


async def write_all(kube: Kube, ns: str, n: int, method: str, concurrency: int, round_no: int) -> tuple[float, float]:
    """(wall seconds, client CPU seconds) for n status writes."""
    limit = asyncio.Semaphore(concurrency)
    body = status(round_no)

    async def one(i: int) -> None:
        name = f"m{i:05d}"
        async with limit:
            if method == "apply":
                await apply_status(kube, "AIModel", ns, name, body)
            else:
                path = resource_path("aimm.io/v1alpha1", "aimodels", ns, name, "status")
                await kube.request("PATCH", path, body={"status": body}, content_type="application/merge-patch+json")

    wall, cpu = time.monotonic(), time.process_time()
    await asyncio.gather(*(one(i) for i in range(n)))
    return time.monotonic() - wall, time.process_time() - cpu


async def rounds(cp: ControlPlane, ns: str, n: int, plan: str) -> None:
    server = cp.pids("kube-apiserver", "etcd")
    creds = load_credentials(str(cp.kubeconfig_path))
    clients = {"aiohttp": Kube(creds), "httpx": HttpxKube(creds)}
    try:
        for round_no, (client_name, method, concurrency) in enumerate(ROUNDS[plan], 1):
            before = cpu_of(server)
            wall, client = await write_all(clients[client_name], ns, n, method, concurrency, round_no)
            print(
                f"| {client_name} | {method} x{concurrency} | {wall:.1f} s | {n / wall:.0f} | {client:.1f} s | "
                f"{cpu_of(server) - before:.1f} s |",
                flush=True,
            )
    finally:
        for kube in clients.values():
            await kube.aclose()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="status-writes")
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--rounds", choices=sorted(ROUNDS), default="default")
    args = parser.parse_args(argv)
    cp = ControlPlane(crds=[REPO / "crds"]).start()
    try:
        api = Api(cp.kubeconfig_path)  # type: ignore[arg-type]
        ns = "status-writes"
        api.create_namespace(ns)
        with ThreadPoolExecutor(16) as pool:
            list(pool.map(api.apply, [model(ns, f"m{i:05d}", provider="openai") for i in range(args.n)]))
        print("| client | writes | wall | writes/s | client CPU | API server + etcd CPU |\n|---|---|---|---|---|---|")
        asyncio.run(rounds(cp, ns, args.n, args.rounds))
    finally:
        cp.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
