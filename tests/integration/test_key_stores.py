"""API keys and rate-limit counters: one contract, on SQLite and in-process memory and on a
real Redis, reached through the same wiring the service and the CLI use."""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import pytest

from ai_pipeline.adapters.rate_limits.memory import MemoryRateLimiter
from ai_pipeline.adapters.rate_limits.redis import RedisRateLimiter
from ai_pipeline.adapters.redis_client import connect
from ai_pipeline.bootstrap import key_store
from ai_pipeline.domain.api_keys import hash_secret, new_key_id, new_secret
from ai_pipeline.ports import ApiKey, KeyStore, RateLimiter
from tests.conftest import make_settings

pytestmark = pytest.mark.anyio

BACKENDS = ["sqlite", pytest.param("redis", marks=pytest.mark.services)]


def a_key(name: str = "ci", scopes: frozenset[str] = frozenset({"submit"}), **kw: Any) -> ApiKey:
    return ApiKey(new_key_id(), name, scopes, created_at=time.time(), **kw)


@pytest.fixture(params=BACKENDS)
async def keys(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[KeyStore]:
    settings = make_settings(f"sqlite:///{tmp_path / 'p.db'}")
    if request.param == "redis":
        redis_server: Any = request.getfixturevalue("redis_server")
        prefix = f"test-{uuid.uuid4().hex[:12]}:"
        settings = make_settings(settings.bus, state=redis_server.url, redis_key_prefix=prefix)
    async with key_store(settings) as store:
        yield store


async def test_a_key_is_found_by_the_hash_of_its_secret_only(keys: KeyStore) -> None:
    secret = new_secret()
    key = a_key(scopes=frozenset({"submit", "read"}), submit_per_hour=5, read_per_hour=0)
    await keys.add(key, hash_secret(secret))
    assert await keys.by_hash(hash_secret(secret)) == key
    assert await keys.by_hash(hash_secret(new_secret())) is None
    assert await keys.by_hash(secret) is None  # the secret itself is no lookup key


async def test_keys_are_listed_oldest_first_with_default_limits_as_none(keys: KeyStore) -> None:
    first, second = a_key("first"), a_key("second", frozenset({"admin"}))
    await keys.add(first, hash_secret(new_secret()))
    await keys.add(second, hash_secret(new_secret()))
    listed = await keys.list()
    assert [k.key_id for k in listed] == [first.key_id, second.key_id]
    assert listed[0].submit_per_hour is None and listed[0].read_per_hour is None


async def test_the_store_stays_keyed_after_its_last_key_is_revoked(keys: KeyStore) -> None:
    assert not await keys.any_keys()
    secret = new_secret()
    key = a_key()
    await keys.add(key, hash_secret(secret))
    assert await keys.any_keys()
    assert await keys.revoke(key.key_id)
    assert not await keys.revoke(key.key_id)  # already revoked
    assert not await keys.revoke("k_00000000")  # unknown
    assert await keys.any_keys()  # a revoked last key must not open the API
    revoked = await keys.by_hash(hash_secret(secret))
    assert revoked is not None and revoked.revoked_at is not None
    assert [k.revoked_at is not None for k in await keys.list()] == [True]


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.services)])
async def limiter(request: pytest.FixtureRequest) -> AsyncIterator[RateLimiter]:
    if request.param == "memory":
        yield MemoryRateLimiter()
        return
    redis_server: Any = request.getfixturevalue("redis_server")
    client = connect(redis_server.url)
    try:
        yield RedisRateLimiter(client, key_prefix=f"test-{uuid.uuid4().hex[:12]}:")
    finally:
        await client.aclose()


async def test_a_bucket_allows_its_limit_then_refuses(limiter: RateLimiter) -> None:
    decisions = [await limiter.hit("key:a:submit", 3, 3600) for _ in range(5)]
    assert [d.allowed for d in decisions] == [True, True, True, False, False]
    assert [d.remaining for d in decisions] == [2, 1, 0, 0, 0]
    first = decisions[0]
    assert first.limit == 3 and first.window_seconds == 3600
    assert time.time() < first.reset_at <= time.time() + 3600
    assert first.reset_at % 3600 == 0  # windows aligned to the hour
    assert all(d.reset_at == first.reset_at for d in decisions)


async def test_buckets_count_apart(limiter: RateLimiter) -> None:
    assert not [await limiter.hit("one", 1, 3600) for _ in range(2)][-1].allowed
    assert (await limiter.hit("two", 1, 3600)).allowed


async def test_a_new_window_starts_a_new_count(limiter: RateLimiter) -> None:
    window = 0.5
    await wait_until((time.time() // window + 1) * window + 0.02)  # a fresh window's start
    first, second = [await limiter.hit("short", 1, window) for _ in range(2)]
    assert first.allowed and not second.allowed
    await wait_until(first.reset_at + 0.02)
    later = await limiter.hit("short", 1, window)
    assert later.allowed and later.reset_at == pytest.approx(first.reset_at + window)


async def wait_until(moment: float) -> None:
    while time.time() < moment:
        await anyio.sleep(0.01)
