"""What one `/status` write costs: server-side apply against a JSON merge patch, at a given concurrency.

A fresh control plane (tests/k8s_harness.py), N AIModels, then rounds of N status writes (three
conditions each) through the operator's own client (`aimm_operator.kube.Kube`), alternating the two
methods. Per round: wall time, writes/s, this process's CPU (the client's share) and kube-apiserver +
etcd CPU. Used for docs/benchmarks.md ("Issue 15, third pass"): whether a merge patch or more
writers would make a thousand status writes faster.

    python -P -m tests.bench.status_writes [--n 1000]
"""

from __future__ import annotations

import argparse
import asyncio
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from aimm_operator.apply import apply_status
from aimm_operator.kube import Kube, load_credentials, resource_path
from aimm_operator.status import condition
from tests.bench.operator_scale import cpu_of
from tests.k8s_harness import ControlPlane
from tests.operator.kubeapi import Api
from tests.operator.manifests import model

REPO = Path(__file__).resolve().parents[2]
ROUNDS = [("apply", 32), ("merge", 32), ("apply", 32), ("merge", 32), ("apply", 64), ("merge", 64)]


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


async def rounds(cp: ControlPlane, ns: str, n: int) -> None:
    server = cp.pids("kube-apiserver", "etcd")
    kube = Kube(load_credentials(str(cp.kubeconfig_path)))
    try:
        for round_no, (method, concurrency) in enumerate(ROUNDS, 1):
            before = cpu_of(server)
            wall, client = await write_all(kube, ns, n, method, concurrency, round_no)
            print(
                f"| {method} x{concurrency} | {wall:.1f} s | {n / wall:.0f} | {client:.1f} s | "
                f"{cpu_of(server) - before:.1f} s |",
                flush=True,
            )
    finally:
        await kube.aclose()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="status-writes")
    parser.add_argument("--n", type=int, default=1000)
    args = parser.parse_args(argv)
    cp = ControlPlane(crds=[REPO / "crds"]).start()
    try:
        api = Api(cp.kubeconfig_path)  # type: ignore[arg-type]
        ns = "status-writes"
        api.create_namespace(ns)
        with ThreadPoolExecutor(16) as pool:
            list(pool.map(api.apply, [model(ns, f"m{i:05d}", provider="openai") for i in range(args.n)]))
        print("| writes | wall | writes/s | client CPU | API server + etcd CPU |\n|---|---|---|---|---|")
        asyncio.run(rounds(cp, ns, args.n))
    finally:
        cp.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
