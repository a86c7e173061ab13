"""API keys in Redis, shared by every API replica. Names carry the configured key prefix:

- ``apikey:<key_id>`` hash: ``secret_hash``, ``name``, ``scopes`` (comma-separated),
  ``created_at``, and ``revoked_at``, ``submit_per_hour``, ``read_per_hour`` when set.
- ``apikey-hash:<sha256>`` string: the key id (the lookup a request makes).
- ``apikeys`` set: every key id; ``apikeys:active``: those not revoked.

No TTL: keys live until revoked, and revoked keys stay listed (who had access, and when).
"""

from __future__ import annotations

import time
from typing import cast

from redis.asyncio import Redis

from ai_pipeline.adapters.redis_client import unavailable
from ai_pipeline.domain.api_keys import decode_scopes, encode_scopes
from ai_pipeline.ports import ApiKey

# KEYS: the key's hash, the active set. ARGV: key id, now. 1 when this call revoked it.
REVOKE_SCRIPT = """
if redis.call('EXISTS', KEYS[1]) == 0 or redis.call('HEXISTS', KEYS[1], 'revoked_at') == 1 then
  return 0
end
redis.call('HSET', KEYS[1], 'revoked_at', ARGV[2])
redis.call('SREM', KEYS[2], ARGV[1])
return 1
"""
_LIMITS = ("submit_per_hour", "read_per_hour")
# Every name the key store writes, as globs under the key prefix: what an emergency flush
# spares and a keys-only restore loads (no log can give keys back).
NAMES = ("apikey:*", "apikey-hash:*", "apikeys", "apikeys:active")


class RedisKeyStore:
    def __init__(self, redis: Redis, key_prefix: str = ""):
        self._redis = redis
        self._prefix = key_prefix
        self._all = f"{key_prefix}apikeys"
        self._active = f"{key_prefix}apikeys:active"
        self._revoke = redis.register_script(REVOKE_SCRIPT)

    def _key(self, key_id: str) -> str:
        return f"{self._prefix}apikey:{key_id}"

    def _lookup(self, secret_hash: str) -> str:
        return f"{self._prefix}apikey-hash:{secret_hash}"

    @unavailable
    async def add(self, key: ApiKey, secret_hash: str) -> None:
        fields: dict[str, str | float | int] = {
            "secret_hash": secret_hash,
            "name": key.name,
            "scopes": encode_scopes(key.scopes),
            "created_at": key.created_at,
        }
        optional = {"revoked_at": key.revoked_at, **{n: getattr(key, n) for n in _LIMITS}}
        fields.update({name: value for name, value in optional.items() if value is not None})
        pipe = self._redis.pipeline(transaction=True)
        pipe.hset(self._key(key.key_id), mapping=fields)  # type: ignore[arg-type]
        pipe.set(self._lookup(secret_hash), key.key_id)
        pipe.sadd(self._all, key.key_id)
        if key.revoked_at is None:
            pipe.sadd(self._active, key.key_id)
        await pipe.execute()

    @unavailable
    async def by_hash(self, secret_hash: str) -> ApiKey | None:
        key_id = cast(str | None, await self._redis.get(self._lookup(secret_hash)))
        return None if key_id is None else await self._get(key_id)

    async def _get(self, key_id: str) -> ApiKey | None:
        fields = cast(dict[str, str], await self._redis.hgetall(self._key(key_id)))
        return _from_fields(key_id, fields) if fields else None

    @unavailable
    async def list(self) -> list[ApiKey]:
        ids = sorted(cast(set[str], await self._redis.smembers(self._all)))
        keys = [key for key_id in ids if (key := await self._get(key_id)) is not None]
        return sorted(keys, key=lambda k: (k.created_at, k.key_id))

    @unavailable
    async def revoke(self, key_id: str) -> bool:
        keys = [self._key(key_id), self._active]
        return bool(await self._revoke(keys=keys, args=[key_id, time.time()]))

    @unavailable
    async def any_keys(self) -> bool:
        return int(await self._redis.scard(self._all)) > 0


def _from_fields(key_id: str, fields: dict[str, str]) -> ApiKey:
    def number(name: str) -> int | None:
        return int(fields[name]) if name in fields else None

    return ApiKey(
        key_id=key_id,
        name=fields["name"],
        scopes=decode_scopes(fields["scopes"]),
        created_at=float(fields["created_at"]),
        revoked_at=float(fields["revoked_at"]) if "revoked_at" in fields else None,
        submit_per_hour=number("submit_per_hour"),
        read_per_hour=number("read_per_hour"),
    )
