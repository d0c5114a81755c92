"""Session-wide real servers: one `redis-server` and one PostgreSQL for the whole run (loopback, temp dirs).

Tests that need isolation use their own key prefix (Redis) or their own database (PostgreSQL).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.backing import PostgresServer, RedisServer, start_postgres, start_redis


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    server = start_redis()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    server = start_postgres()
    try:
        yield server
    finally:
        server.stop()
