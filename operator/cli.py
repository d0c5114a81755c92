"""Run the operator: `aimm operator run` (the lead's CLI) and `python -m aimm_operator` call this."""

from __future__ import annotations

import argparse
import asyncio
import logging
from collections.abc import Sequence

from aimm_operator.lean_imports import import_kopf_without_kubernetes_client


def run_operator(
    namespace: str | None = None,
    all_namespaces: bool = False,
    stats_interval_s: float = 10.0,
    *,
    namespaces: Sequence[str] = (),
    kubeconfig: str | None = None,
    context: str | None = None,
    liveness_endpoint: str | None = None,
    resync_interval_s: float = 300.0,
    stats_timeout_s: float = 2.0,
    verbose: bool = False,
    watch_crds: bool | None = None,
    metrics_port: int = 0,
) -> None:
    """Run until SIGINT/SIGTERM. Watch `namespace` (plus `namespaces`), or all with all_namespaces."""
    import_kopf_without_kubernetes_client()  # before kopf's first import: ~52 MB less RSS
    import kopf

    from aimm_operator.credentials import load_credentials
    from aimm_operator.handlers import OperatorSettings, build_registry

    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        force=True,  # `aimm` configured logging already; -v must still take effect
    )
    logging.getLogger("httpx").setLevel(logging.DEBUG if verbose else logging.WARNING)
    # kopf logs every handler run at INFO: one line per watch event, thousands at scale.
    logging.getLogger("kopf.objects").setLevel(logging.DEBUG if verbose else logging.WARNING)
    watched = [n for n in [namespace, *namespaces] if n]
    if not all_namespaces and not watched:
        raise SystemExit("aimm operator: give --namespace NAME (repeatable) or --all-namespaces")
    settings = OperatorSettings(
        credentials=load_credentials(kubeconfig, context),
        stats_interval_s=stats_interval_s,
        stats_timeout_s=stats_timeout_s,
        resync_interval_s=resync_interval_s,
        # Cluster-wide by default only: a namespaced install's RoleBinding cannot watch CRDs.
        watch_crds=all_namespaces if watch_crds is None else watch_crds,
        metrics_port=metrics_port,
        namespaces=() if all_namespaces else tuple(dict.fromkeys(watched)),
    )
    registry = build_registry(settings)
    asyncio.run(
        kopf.operator(
            registry=registry,
            standalone=True,  # one replica (Recreate); no kopf peering CRDs needed
            clusterwide=all_namespaces,
            namespaces=[] if all_namespaces else watched,
            liveness_endpoint=liveness_endpoint,
            memo=kopf.Memo(),
        )
    )


def build_parser(prog: str = "aimm operator run") -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=prog, description="Run the aimm Kubernetes operator.")
    scope = p.add_mutually_exclusive_group()
    scope.add_argument("-n", "--namespace", action="append", default=[], help="namespace to watch (repeatable)")
    scope.add_argument("-A", "--all-namespaces", action="store_true", help="watch every namespace")
    p.add_argument("--stats-interval", type=float, default=10.0, help="seconds between stats polls (default 10)")
    p.add_argument("--stats-timeout", type=float, default=2.0, help="timeout of one stats request (default 2)")
    p.add_argument("--resync-interval", type=float, default=300.0, help="full reconcile at least this often")
    p.add_argument("--kubeconfig", help="kubeconfig file (default: in-cluster, then $KUBECONFIG)")
    p.add_argument("--context", help="kubeconfig context")
    p.add_argument("--liveness", help="serve liveness probes, e.g. http://0.0.0.0:8081/healthz")
    p.add_argument(
        "--metrics-port",
        type=int,
        default=0,
        help="serve Prometheus metrics on this port, e.g. 8080 (default 0: off; the chart turns it on)",
    )
    p.add_argument(
        "--watch-crds",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="notice Prometheus Operator CRDs within seconds (default: on with --all-namespaces)",
    )
    p.add_argument("-v", "--verbose", action="store_true")
    return p


def main(argv: Sequence[str] | None = None, prog: str = "python -m aimm_operator") -> int:
    args = build_parser(prog).parse_args(argv)
    run_operator(
        namespace=None,
        all_namespaces=args.all_namespaces,
        stats_interval_s=args.stats_interval,
        namespaces=args.namespace,
        kubeconfig=args.kubeconfig,
        context=args.context,
        liveness_endpoint=args.liveness,
        resync_interval_s=args.resync_interval,
        stats_timeout_s=args.stats_timeout,
        verbose=args.verbose,
        watch_crds=args.watch_crds,
        metrics_port=args.metrics_port,
    )
    return 0
