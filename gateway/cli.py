"""`aimm`: the one command line for the gateway, mock providers, the operator and benchmarks."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

from aimm_gateway.config import ConfigError, config_json_schema
from aimm_gateway.logs import setup_logging
from aimm_gateway.mock import credentials as mock_credentials


def _serve(args: argparse.Namespace) -> int:
    from aimm_gateway.serve import serve

    try:
        return serve(
            args.config, args.host, args.port, server=args.server, workers=args.workers, grace_s=args.grace_period
        )
    except ConfigError as exc:
        print(f"aimm: {exc}", file=sys.stderr)
        return 2


def _schema(args: argparse.Namespace) -> int:
    print(json.dumps(config_json_schema(), indent=2))
    return 0


def _mock(args: argparse.Namespace) -> int:
    from aimm_gateway.mock.faults import FaultSettings
    from aimm_gateway.mock.server import run_mock_provider

    faults = FaultSettings(
        latency_ms=args.latency_ms,
        stream_chunks=args.stream_chunks,
        chunk_interval_ms=args.chunk_interval_ms,
        fail_rate=args.fail_rate,
        status_code=args.status_code,
    )
    run_mock_provider(args.format, args.host, args.port, faults, require_auth=args.require_auth)
    return 0


def _operator(args: argparse.Namespace) -> int:
    # The operator owns its flags: everything after `aimm operator run` goes to its own parser.
    from aimm_operator.cli import main as operator_main

    return operator_main(args.operator_args, prog="aimm operator run")


def _crds(args: argparse.Namespace) -> int:
    from aimm_operator.crd.generate import write_crds

    for path in write_crds(Path(args.out)):
        print(path)
    return 0


def _bench(args: argparse.Namespace) -> int:
    from aimm_gateway.bench.runner import main as bench_main

    return bench_main(args)


def _db_upgrade(args: argparse.Namespace) -> int:
    from aimm_gateway.store.base import StoreError
    from aimm_gateway.store.cli import db_upgrade

    try:
        print(db_upgrade(args.config))
    except (ConfigError, StoreError) as exc:
        print(f"aimm: {exc}", file=sys.stderr)
        return 2
    return 0


def _report(args: argparse.Namespace) -> int:
    from aimm_gateway.analytics.cli import write_report
    from aimm_gateway.store.base import StoreError

    try:
        print(write_report(args.config, args.period, args.out))
    except (ConfigError, StoreError, ValueError) as exc:
        print(f"aimm: {exc}", file=sys.stderr)
        return 2
    return 0


def _audit_verify(args: argparse.Namespace) -> int:
    from aimm_gateway.security.audit import verify_file
    from aimm_gateway.store.base import StoreError

    if (args.file is None) == (args.config is None):
        print("aimm: audit verify: give a FILE or --config (the config's usage store), not both", file=sys.stderr)
        return 2
    try:
        result = verify_file(Path(args.file)) if args.file else _verify_audit_store(args.config)
    except (ConfigError, StoreError) as exc:
        print(f"aimm: {exc}", file=sys.stderr)
        return 2
    if result.ok:
        print(f"ok: {result.lines} records, chain intact")
        return 0
    print(f"TAMPERED: {result.problem}", file=sys.stderr)
    return 1


def _verify_audit_store(config_path: str) -> Any:
    import asyncio

    from aimm_gateway.config import load_config
    from aimm_gateway.security.audit_store import verify_store
    from aimm_gateway.store.base import StoreError
    from aimm_gateway.store.factory import build_store

    config = load_config(config_path)
    if config.store is None:
        raise StoreError(f"{config_path}: no `store:` section, no audit trail stored there")
    settings = config.store

    async def run() -> Any:
        store = build_store(settings)
        try:
            await store.open()
            return await verify_store(store)
        finally:
            await store.close()

    return asyncio.run(run())


Subcommands = argparse._SubParsersAction  # argparse's type for `add_subparsers()`


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="aimm", description="AI Multi-Model gateway and operator")
    parser.add_argument("--log-level", default=os.environ.get("AIMM_LOG_LEVEL", "INFO"))
    parser.add_argument("--log-format", choices=["json", "text"], default=os.environ.get("AIMM_LOG_FORMAT", "json"))
    sub = parser.add_subparsers(dest="command", required=True)
    _add_gateway(sub)
    _add_mock_provider(sub)
    _add_operator(sub)
    _add_crds(sub)
    _add_db(sub)
    _add_report(sub)
    _add_bench(sub)
    _add_audit(sub)
    return parser


def _add_gateway(sub: Subcommands) -> None:
    gw = sub.add_parser("gateway", help="the data plane").add_subparsers(dest="gateway_command", required=True)
    serve = gw.add_parser("serve", help="serve the gateway from a config file")
    serve.add_argument("--config", required=True, help="gateway config YAML (reloaded on change)")
    serve.add_argument("--host", default=None)
    serve.add_argument("--port", type=int, default=None)
    serve.add_argument("--server", choices=["uvicorn", "granian"], default="uvicorn")
    serve.add_argument(
        "--workers",
        type=int,
        default=None,
        help="worker processes (default: $AIMM_WORKERS, else the container's CPU limit, else the usable cores;"
        " more than 1 needs state.redis)",
    )
    serve.add_argument(
        "--grace-period",
        type=float,
        default=float(os.environ.get("AIMM_GRACE_PERIOD_S", "25")),
        help="seconds SIGTERM waits for in-flight requests and streams (default: $AIMM_GRACE_PERIOD_S or 25)",
    )
    serve.set_defaults(func=_serve)
    schema = gw.add_parser("schema", help="print the config's JSON Schema")
    schema.set_defaults(func=_schema)


def _add_mock_provider(sub: Subcommands) -> None:
    mock = sub.add_parser(
        "mock-provider",
        help="a fake upstream speaking a provider's real wire format",
        epilog=mock_credentials.HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    mock.add_argument(
        "--format",
        required=True,
        choices=["openai", "anthropic", "gemini", "cohere", "bedrock", "azure", "vertex"],
    )
    mock.add_argument("--host", default="127.0.0.1")
    mock.add_argument("--port", type=int, default=9000)
    mock.add_argument("--latency-ms", type=float, default=0.0)
    mock.add_argument("--stream-chunks", type=int, default=8)
    mock.add_argument("--chunk-interval-ms", type=float, default=0.0)
    mock.add_argument("--fail-rate", type=float, default=0.0)
    mock.add_argument("--status-code", type=int, default=500)
    mock.add_argument("--require-auth", action="store_true", help="reject requests without an API key")
    mock.set_defaults(func=_mock)


def _add_operator(sub: Subcommands) -> None:
    op = sub.add_parser("operator", help="the control plane").add_subparsers(dest="operator_command", required=True)
    # add_help=False: `aimm operator run --help` is answered by the operator's own parser.
    run = op.add_parser("run", help="run the kopf operator (see `aimm operator run --help`)", add_help=False)
    run.set_defaults(func=_operator)


def _add_crds(sub: Subcommands) -> None:
    crds = sub.add_parser("crds", help="regenerate the CRD manifests")
    crds.add_argument("--out", default="crds")
    crds.set_defaults(func=_crds)


def _add_db(sub: Subcommands) -> None:
    db = sub.add_parser("db", help="the usage store").add_subparsers(dest="db_command", required=True)
    upgrade = db.add_parser("upgrade", help="apply pending usage-store schema migrations")
    upgrade.add_argument("--config", required=True, help="gateway config YAML (its `store:` section)")
    upgrade.set_defaults(func=_db_upgrade)


def _add_report(sub: Subcommands) -> None:
    report = sub.add_parser("report", help="PDF usage and cost report for a period")
    report.add_argument("--config", required=True, help="gateway config YAML (its `store:` and budgets)")
    report.add_argument("--period", required=True, help="YYYY-MM (a month) or YYYY-MM-DD (a day)")
    report.add_argument("--out", required=True, help="PDF file to write")
    report.set_defaults(func=_report)


def _add_bench(sub: Subcommands) -> None:
    bench = sub.add_parser("bench", help="measure the gateway against its mock upstream")
    bench.add_argument("--out", default=None, help="write the markdown report here")
    bench.add_argument("--duration", type=float, default=5.0)
    bench.add_argument("--quick", action="store_true")
    bench.add_argument(
        "--ab",
        action="append",
        default=None,
        metavar="REF",
        help="also run the gateway of this git commit (repeatable)",
    )
    bench.add_argument(
        "--clients", default=None, metavar="A,B", help="A/B: this tree once per upstream client (e.g. aiohttp,h1)"
    )
    bench.add_argument("--ab-only", action="store_true", help="only the interleaved A/B (nginx, --ab refs, --clients)")
    bench.add_argument("--rounds", type=int, default=5, help="interleaved rounds of --ab-only / --security-only")
    bench.add_argument(
        "--stream-memory", type=int, default=None, metavar="N", help="only: tracemalloc of N open streams"
    )
    bench.add_argument("--client", default="h1", help="upstream client of the --stream-memory run")
    bench.add_argument("--streams", type=int, default=2000, help="paced streams held open in the capacity run")
    bench.add_argument("--flame", default=None, metavar="SVG", help="only profile one worker (py-spy) into SVG")
    bench.add_argument("--flame-stream", action="store_true", help="profile streamed replies instead of plain ones")
    bench.add_argument("--capacity-only", action="store_true", help="only the paced-streams capacity run")
    bench.add_argument(
        "--scrape-only", action="store_true", help="only what a /metrics scrape costs a many-model worker (--models)"
    )
    bench.add_argument("--models", type=int, default=1000, help="models of the --scrape-only worker")
    bench.add_argument(
        "--latency-only", action="store_true", help="only added p50 at concurrency 1, interleaved (uses --rounds, --ab)"
    )
    bench.add_argument(
        "--security-only", action="store_true", help="only auth + limits + guards on the hot path (uses --rounds)"
    )
    bench.add_argument("--iface", action="store_true", help="only compare the server interfaces (ASGI vs RSGI)")
    bench.add_argument("--soak", type=float, default=None, metavar="MINUTES", help="run only the soak, this long")
    bench.set_defaults(func=_bench)


def _add_audit(sub: Subcommands) -> None:
    audit = sub.add_parser("audit", help="the audit trail").add_subparsers(dest="audit_command", required=True)
    verify = audit.add_parser(
        "verify", help="check the audit trail's hash chain in a file or in the usage store (exit 1 if tampered)"
    )
    verify.add_argument("file", nargs="?", default=None, help="a JSON-lines audit file")
    verify.add_argument("--config", default=None, help="verify every chain in this config's usage store (ai_audit)")
    verify.set_defaults(func=_audit_verify)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args, rest = parser.parse_known_args(argv)
    if args.func is _operator:
        args.operator_args = rest
    elif rest:
        parser.error(f"unrecognized arguments: {' '.join(rest)}")
    setup_logging(args.log_level, args.log_format)
    result: int = args.func(args)
    return result


if __name__ == "__main__":
    sys.exit(main())
