"""`aimm db upgrade` as a real command against the harness's PostgreSQL."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import asyncpg
import yaml

from aimm_gateway.store.migrations import LATEST
from tests.backing import PostgresServer
from tests.cost.stores import fresh_postgres_dsn

AIMM = str(Path(sys.executable).parent / "aimm")


def test_db_upgrade_applies_then_is_a_no_op(postgres_server: PostgresServer, tmp_path: Path) -> None:
    dsn = asyncio.run(fresh_postgres_dsn(postgres_server))
    config = tmp_path / "gw.yaml"
    config.write_text(yaml.safe_dump({"store": {"postgres": {"dsn": {"env": "AIMM_TEST_DSN"}}}}))
    env = {**os.environ, "AIMM_TEST_DSN": dsn}
    first = subprocess.run(
        [AIMM, "db", "upgrade", "--config", str(config)], env=env, capture_output=True, text=True, timeout=60
    )
    assert first.returncode == 0, first.stderr
    applied = ", ".join(str(v) for v in range(1, LATEST + 1))
    assert f"applied {applied};" in first.stdout and "postgres" in first.stdout
    second = subprocess.run(
        [AIMM, "db", "upgrade", "--config", str(config)], env=env, capture_output=True, text=True, timeout=60
    )
    assert "already current" in second.stdout
    assert asyncio.run(_read(dsn)) == (LATEST, 0)


async def _read(dsn: str) -> tuple[int, int]:
    conn = await asyncpg.connect(dsn)
    try:
        version = await conn.fetchval("SELECT MAX(version) FROM ai_schema_version")
        return version, await conn.fetchval("SELECT COUNT(*) FROM ai_requests")
    finally:
        await conn.close()


def test_db_upgrade_names_a_missing_secret_without_leaking(tmp_path: Path) -> None:
    config = tmp_path / "gw.yaml"
    config.write_text(yaml.safe_dump({"store": {"postgres": {"dsn": {"env": "AIMM_TEST_UNSET_DSN"}}}}))
    env = {k: v for k, v in os.environ.items() if k != "AIMM_TEST_UNSET_DSN"}
    out = subprocess.run(
        [AIMM, "db", "upgrade", "--config", str(config)], env=env, capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 2 and "env AIMM_TEST_UNSET_DSN is not set" in out.stderr


def test_db_upgrade_unreachable_server_hides_the_password(tmp_path: Path) -> None:
    config = tmp_path / "gw.yaml"
    config.write_text(yaml.safe_dump({"store": {"postgres": {"dsn": {"env": "AIMM_TEST_DSN"}}}}))
    env = {**os.environ, "AIMM_TEST_DSN": "postgresql://u:s3cr3t-pw@127.0.0.1:1/db"}
    out = subprocess.run(
        [AIMM, "db", "upgrade", "--config", str(config)], env=env, capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 2 and "cannot connect" in out.stderr and "s3cr3t-pw" not in out.stderr
