"""The operator's `db-upgrade` init container, run as the kubelet would run it (no kubelet here:
a local process stands in for the pod) against the harness's PostgreSQL: before it a gateway
refuses the store, after it the gateway opens it."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import pytest

from aimm_gateway.store.base import StoreError
from aimm_gateway.store.postgres import PostgresStore
from aimm_operator import render
from aimm_operator.compile import compile_gateway
from tests.backing import PostgresServer
from tests.cost.stores import fresh_postgres_dsn
from tests.unit.operator_fixtures import gw, model, snapshot

BIN = Path(sys.executable).parent


async def _open(dsn: str) -> None:
    store = PostgresStore(dsn)
    try:
        await store.open()
    finally:
        await store.close()


def test_init_container_upgrades_the_schema_the_gateway_needs(postgres_server: PostgresServer, tmp_path: Path) -> None:
    snap = snapshot(gateways=[gw(database={"urlSecretRef": {"name": "db", "key": "url"}})], models=[model("m")])
    compiled = compile_gateway(snap.gateways[0], snap)
    (deployment,) = [m for m in render.children(snap.gateways[0], compiled, frozenset()) if m["kind"] == "Deployment"]
    (init,) = deployment["spec"]["template"]["spec"]["initContainers"]
    dsn = asyncio.run(fresh_postgres_dsn(postgres_server))
    with pytest.raises(StoreError, match="aimm db upgrade"):
        asyncio.run(_open(dsn))
    config = tmp_path / "config.yaml"  # the ConfigMap, as mounted at /etc/aimm/config.yaml
    config.write_text(compiled.config_json)
    command = [str(BIN / init["command"][0]), *init["command"][1:]]
    command[command.index(render.CONFIG_PATH)] = str(config)
    env = {**os.environ, "AIMM_DATABASE_URL": dsn}  # what the secretKeyRef gives the container
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "applied 1" in done.stdout
    asyncio.run(_open(dsn))  # the gateway container now starts
