"""The GitHub App mode's records in Redis (``ports.GitHubStore``), beside the state store.

Keys, each behind the configured prefix; repositories lower-cased:

- ``github:issue:<owner/name>:<number>``: the issue's record (JSON); never expires (it
  holds what people decided about the issue's labels).
- ``github:issues:<owner/name>``: sorted set of the numbers recorded, for ``issues``.
- ``github:action:<owner/name>:<number>:<version>``: a pass's ledger entry (JSON).
- ``github:delivery:<id>``: the event name of a delivery seen, expiring after a week.
- ``github:lease:<owner/name>:<number>``: the holder acting on the issue (expiring).

A record changes by optimistic transaction (WATCH, read, MULTI/EXEC): a change made
meanwhile by another process makes ours run again on its result, so none is lost.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, cast

from redis.asyncio import Redis
from redis.exceptions import WatchError

from ai_pipeline.adapters.redis_client import connect, unavailable
from ai_pipeline.domain.errors import TransientError
from ai_pipeline.domain.github import ActionRecord, IssueRecord, IssueRef, new_record

DELIVERY_TTL_SECONDS = 7 * 86400
CAS_ATTEMPTS = 64

# Deletes the lease only while it is still ours.
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""
# Takes the lease if free or already ours (then extends it).
_LEASE = """
local holder = redis.call('GET', KEYS[1])
if holder and holder ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return 1
"""


class RedisGitHubStore:
    def __init__(self, url: str, key_prefix: str = "", client: Redis | None = None):
        self._redis = client if client is not None else connect(url, max_connections=16)
        self._owns_client = client is None
        self._prefix = key_prefix
        self._lease = self._redis.register_script(_LEASE)
        self._release = self._redis.register_script(_RELEASE)

    def _key(self, *parts: str | int) -> str:
        return self._prefix + "github:" + ":".join(str(p) for p in parts)

    def _issue_key(self, issue: IssueRef) -> str:
        return self._key("issue", issue.repository.lower(), issue.number)

    @unavailable
    async def start(self) -> None:
        await self._redis.ping()

    async def close(self) -> None:
        if self._owns_client:
            await self._redis.aclose()

    @unavailable
    async def get_issue(self, issue: IssueRef) -> IssueRecord | None:
        raw = await self._redis.get(self._issue_key(issue))
        return None if raw is None else IssueRecord.model_validate_json(raw)

    @unavailable
    async def update_issue(
        self, issue: IssueRef, change: Callable[[IssueRecord], IssueRecord]
    ) -> IssueRecord:
        key = self._issue_key(issue)
        index = self._key("issues", issue.repository.lower())
        async with self._redis.pipeline(transaction=True) as pipe:
            for _ in range(CAS_ATTEMPTS):
                try:
                    await pipe.watch(key)
                    raw = await pipe.get(key)
                    current = (
                        new_record(issue) if raw is None else IssueRecord.model_validate_json(raw)
                    )
                    updated = change(current)
                    pipe.multi()  # type: ignore[no-untyped-call]
                    pipe.set(key, updated.model_dump_json())
                    pipe.zadd(index, {str(issue.number): issue.number})
                    await pipe.execute()
                    return updated
                except WatchError:
                    continue
        raise TransientError(f"issue {issue}: {CAS_ATTEMPTS} write conflicts")

    @unavailable
    async def issues(self, repository: str) -> list[IssueRecord]:
        numbers = cast(
            list[str], await self._redis.zrange(self._key("issues", repository.lower()), 0, -1)
        )
        keys = [self._key("issue", repository.lower(), n) for n in numbers]
        raws = cast(list[str | None], await self._redis.mget(keys)) if keys else []
        return [IssueRecord.model_validate_json(raw) for raw in raws if raw is not None]

    @unavailable
    async def get_action(self, issue: IssueRef, version: int) -> ActionRecord | None:
        raw = await self._redis.get(
            self._key("action", issue.repository.lower(), issue.number, version)
        )
        return None if raw is None else ActionRecord.model_validate_json(raw)

    @unavailable
    async def put_action(self, record: ActionRecord) -> None:
        key = self._key("action", record.repository.lower(), record.number, record.version)
        await self._redis.set(key, record.model_dump_json())

    @unavailable
    async def seen_delivery(self, delivery_id: str) -> bool:
        return bool(await self._redis.exists(self._key("delivery", delivery_id)))

    @unavailable
    async def mark_delivery(self, delivery_id: str, event: str) -> None:
        await self._redis.set(self._key("delivery", delivery_id), event, ex=DELIVERY_TTL_SECONDS)

    @unavailable
    async def lease(self, issue: IssueRef, holder: str, seconds: float) -> bool:
        key = self._key("lease", issue.repository.lower(), issue.number)
        return bool(await self._lease(keys=[key], args=[holder, max(1, round(seconds * 1000))]))

    @unavailable
    async def release(self, issue: IssueRef, holder: str) -> None:
        key = self._key("lease", issue.repository.lower(), issue.number)
        await self._release(keys=[key], args=[holder])

    async def ping(self) -> dict[str, Any]:
        try:
            await self._redis.ping()
        except Exception as exc:  # a health check reports, it never raises
            return {"status": "unhealthy", "backend": "redis", "error": type(exc).__name__}
        return {"status": "healthy", "backend": "redis"}
