"""The Redis key store on a real redis-server: two stores stand for two processes sharing one Redis."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from aimm_gateway.config import RedisSettings
from aimm_gateway.security.identity import Role
from aimm_gateway.security.keys_redis import RedisKeyStore
from aimm_gateway.state.base import StateUnavailable
from tests.backing import RedisServer


def _settings(redis: RedisServer, tmp_path: Path, timeout_ms: float = 2000) -> RedisSettings:
    url_file = tmp_path / "redis-url"  # the URL is a secret reference, as in a real config
    url_file.write_text(redis.url)
    prefix = f"keys-{uuid.uuid4().hex[:8]}:"
    return RedisSettings.model_validate(
        {"url": {"file": str(url_file)}, "key_prefix": prefix, "timeout_ms": timeout_ms}
    )


@pytest.fixture
async def pair(redis_server: RedisServer, tmp_path: Path) -> AsyncIterator[tuple[RedisKeyStore, RedisKeyStore, str]]:
    settings = _settings(redis_server, tmp_path)
    prefix = settings.key_prefix
    a = RedisKeyStore(settings, sync_interval_s=0.2)
    b = RedisKeyStore(settings, sync_interval_s=0.2)
    try:
        yield a, b, prefix
    finally:
        await a.close()
        await b.close()


async def test_created_on_one_works_on_the_other_at_once_and_only_hashes_are_stored(
    pair: tuple[RedisKeyStore, RedisKeyStore, str], redis_server: RedisServer
) -> None:
    a, b, prefix = pair
    assert await b.verify("aimm_000000000000_nothing") is None  # b has synced an empty store
    record, secret = await a.create("ci", Role.USER, owner="team-a")
    found = await b.verify(secret)  # no wait: an unknown id is read from Redis at once
    assert found is not None and found.identity().name == "ci" and found.owner == "team-a"
    assert [k.id for k in await b.keys()] == [record.id]
    raw = aioredis.Redis.from_url(redis_server.url)
    try:
        stored = await raw.hgetall(prefix + "{apikeys}")
    finally:
        await raw.aclose()
    blob = stored[record.id.encode()]
    assert secret.rsplit("_", 1)[1].encode() not in blob and b"scrypt" in blob


async def test_revocation_on_one_is_enforced_by_the_other_within_the_sync_bound(
    pair: tuple[RedisKeyStore, RedisKeyStore, str],
) -> None:
    a, b, _ = pair
    record, secret = await a.create("svc", Role.DEVELOPER)
    assert await b.verify(secret) is not None  # memoised in b from here on
    await a.revoke(record.id)
    await asyncio.sleep(0.25)  # past b's sync interval (0.2 s)
    assert await b.verify(secret) is None


async def test_rotation_overlap_across_stores(pair: tuple[RedisKeyStore, RedisKeyStore, str]) -> None:
    a, b, _ = pair
    record, old = await a.create("svc", Role.USER)
    assert await a.verify(old) is not None and await b.verify(old) is not None
    rotated = await b.rotate(record.id, overlap_s=0.6)
    assert rotated is not None
    new = rotated[1]
    await asyncio.sleep(0.25)
    assert await a.verify(new) is not None and await a.verify(old) is not None  # overlap: both work
    await asyncio.sleep(0.6)
    assert await a.verify(old) is None and await b.verify(old) is None  # the overlap ended everywhere
    assert await a.verify(new) is not None


async def test_concurrent_rotate_and_revoke_on_two_stores_never_lose_the_revocation(
    pair: tuple[RedisKeyStore, RedisKeyStore, str],
) -> None:
    a, b, _ = pair
    for _ in range(5):
        record, _secret = await a.create("race", Role.USER)
        await asyncio.gather(a.rotate(record.id, 60), b.revoke(record.id), a.rotate(record.id, 60))
        final = await b.get(record.id)
        assert final is not None and final.revoked_at is not None


async def test_redis_down_keeps_known_keys_and_refuses_unknown_ones_fast(
    redis_server: RedisServer, tmp_path: Path
) -> None:
    settings = _settings(redis_server, tmp_path, timeout_ms=200)
    lost: list[int] = []
    store = RedisKeyStore(settings, on_unavailable=lambda: lost.append(1), sync_interval_s=0.05)
    other = RedisKeyStore(settings)
    try:
        _, known = await other.create("known", Role.USER)
        assert await store.verify(known) is not None
        _, unseen = await other.create("unseen", Role.USER)  # after store's last sync
        redis_server.stop()
        try:
            await asyncio.sleep(0.1)
            assert await store.verify(known) is not None  # the last view still verifies it
            assert lost  # and the outage was counted
            with pytest.raises(StateUnavailable):
                await asyncio.wait_for(store.verify(unseen), 2.0)  # bounded, never a hang
        finally:
            redis_server.start_again()
    finally:
        await store.close()
        await other.close()
