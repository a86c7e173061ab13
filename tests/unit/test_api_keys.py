"""Secrets, hashes, scopes and route rules of the API's keys; the key cache's expiry."""

from __future__ import annotations

import hashlib
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from ai_pipeline.adapters.keys.sqlite import SqliteKeyStore
from ai_pipeline.adapters.sqlite_db import SqliteDatabase
from ai_pipeline.api.auth import KeyCache, Rule, presented_secret, rule_for
from ai_pipeline.domain.api_keys import (
    decode_scopes,
    encode_scopes,
    grants,
    hash_secret,
    new_key_id,
    new_secret,
)
from ai_pipeline.ports import ApiKey


def test_secrets_are_prefixed_random_and_long() -> None:
    secrets = {new_secret() for _ in range(100)}
    assert len(secrets) == 100
    assert all(s.startswith("aip_") and len(s) >= 4 + 43 for s in secrets)


def test_key_ids_are_public_short_hex() -> None:
    key_id = new_key_id()
    assert key_id.startswith("k_") and len(key_id) == 10
    int(key_id[2:], 16)


def test_the_stored_hash_is_the_sha256_of_the_secret_and_never_the_secret() -> None:
    secret = new_secret()
    assert hash_secret(secret) == hashlib.sha256(secret.encode()).hexdigest()
    assert secret not in hash_secret(secret)
    assert hash_secret(secret) != hash_secret(new_secret())


def key(*scopes: str) -> ApiKey:
    return ApiKey("k_00000001", "t", frozenset(scopes), created_at=0.0)


def test_a_scope_grants_itself_and_admin_grants_all() -> None:
    assert grants(key("submit"), "submit") and not grants(key("submit"), "read")
    assert not grants(key("read"), "admin")
    assert all(grants(key("admin"), s) for s in ("submit", "read", "admin"))


def test_scopes_round_trip_through_their_stored_text() -> None:
    scopes = frozenset({"read", "submit"})
    assert encode_scopes(scopes) == "read,submit"
    assert decode_scopes(encode_scopes(scopes)) == scopes


@pytest.mark.parametrize(
    ("headers", "secret"),
    [
        ([(b"x-api-key", b"aip_a")], "aip_a"),
        ([(b"authorization", b"Bearer aip_b")], "aip_b"),
        ([(b"authorization", b"bearer   aip_c ")], "aip_c"),
        ([(b"authorization", b"Bearer aip_b"), (b"x-api-key", b"aip_a")], "aip_a"),
        ([(b"authorization", b"Basic dXNlcjpwYXNz")], None),
        ([(b"authorization", b"Bearer ")], None),
        ([(b"x-api-key", b"")], None),
        ([], None),
    ],
)
def test_the_secret_comes_from_x_api_key_or_a_bearer_token(
    headers: list[tuple[bytes, bytes]], secret: str | None
) -> None:
    assert presented_secret(headers) == secret


@pytest.mark.parametrize(
    ("method", "path", "metrics_public", "rule"),
    [
        ("GET", "/api/v1/health", False, None),
        ("GET", "/health", False, None),
        ("GET", "/openapi.json", False, None),
        ("GET", "/metrics", True, None),
        ("GET", "/metrics", False, Rule("read", None)),
        ("POST", "/api/v1/bug-reports", True, Rule("submit", "submit")),
        ("GET", "/api/v1/requests", True, Rule("read", "read")),
        ("GET", "/api/v1/requests/r-1/status", True, Rule("read", "read")),
        ("GET", "/api/v1/metrics", True, Rule("read", "read")),
        ("GET", "/api/v1/issues/3", True, Rule("read", "read")),
        ("DELETE", "/api/v1/requests/r-1", True, Rule("admin", None)),
        ("GET", "/elsewhere", True, Rule("admin", None)),
    ],
)
def test_each_route_needs_its_scope(
    method: str, path: str, metrics_public: bool, rule: Rule | None
) -> None:
    assert rule_for(method, path, metrics_public) == rule


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqliteKeyStore]:
    keys = SqliteKeyStore(SqliteDatabase(tmp_path / "keys.db"))
    await keys.start()
    yield keys
    await keys.close()


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.mark.anyio
async def test_the_cache_sees_a_revocation_once_its_entry_expires(store: SqliteKeyStore) -> None:
    clock = Clock()
    cache = KeyCache(store, ttl=5.0, clock=clock)
    secret = new_secret()
    api_key = ApiKey(new_key_id(), "t", frozenset({"submit"}), time.time())
    assert not await cache.any_keys()
    await store.add(api_key, hash_secret(secret))
    assert not await cache.any_keys()  # cached for 5 s
    assert await cache.by_hash(hash_secret(secret)) == api_key
    await store.revoke(api_key.key_id)
    clock.now += 4.9
    cached = await cache.by_hash(hash_secret(secret))
    assert cached is not None and cached.revoked_at is None
    clock.now += 0.2
    fresh = await cache.by_hash(hash_secret(secret))
    assert fresh is not None and fresh.revoked_at is not None
    assert await cache.any_keys()  # revoked, it still keeps the API closed


@pytest.mark.anyio
async def test_the_cache_remembers_unknown_secrets_too(store: SqliteKeyStore) -> None:
    clock = Clock()
    cache = KeyCache(store, ttl=5.0, clock=clock)
    secret = new_secret()
    assert await cache.by_hash(hash_secret(secret)) is None
    await store.add(ApiKey(new_key_id(), "t", frozenset({"read"}), 0.0), hash_secret(secret))
    assert await cache.by_hash(hash_secret(secret)) is None
    clock.now += 5.0
    assert await cache.by_hash(hash_secret(secret)) is not None
