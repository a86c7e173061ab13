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
from ai_pipeline.ports import PassStart

DELIVERY_TTL_SECONDS = 7 * 86400
CAS_ATTEMPTS = 64

# Deletes the lease only while it is still ours.
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""
# KEYS: action, lease, issue record. ARGV: holder, lease ms, the pending action (JSON).
# Returns {outcome, done action or '', record or ''}: see GitHubStore.begin_pass.
_BEGIN = """
local record = redis.call('GET', KEYS[3]) or ''
local done = redis.call('GET', KEYS[1])
if done and cjson.decode(done)['state'] == 'done' then return {'acted', done, record} end
local holder = redis.call('GET', KEYS[2])
if holder and holder ~= ARGV[1] then return {'busy', '', ''} end
redis.call('SET', KEYS[2], ARGV[1], 'PX', ARGV[2])
redis.call('SET', KEYS[1], ARGV[3])
return {'go', '', record}
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
        self._begin = self._redis.register_script(_BEGIN)
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
        return await self._write(issue, change)

    async def _write(
        self,
        issue: IssueRef,
        change: Callable[[IssueRecord], IssueRecord],
        action: ActionRecord | None = None,
        holder: str | None = None,
    ) -> IssueRecord:
        """``change`` applied to the record in one optimistic transaction, with ``action``
        written and ``holder``'s lease released in it when given."""
        key, lease = self._issue_key(issue), self._lease_key(issue)
        watched = [key, lease] if holder is not None else [key]
        async with self._redis.pipeline(transaction=True) as pipe:
            for _ in range(CAS_ATTEMPTS):
                try:
                    await pipe.watch(*watched)
                    raw = await pipe.get(key)
                    ours = holder is not None and await pipe.get(lease) == holder
                    current = (
                        new_record(issue) if raw is None else IssueRecord.model_validate_json(raw)
                    )
                    updated = change(current)
                    pipe.multi()  # type: ignore[no-untyped-call]
                    pipe.set(key, updated.model_dump_json())
                    index = self._key("issues", issue.repository.lower())
                    pipe.zadd(index, {str(issue.number): issue.number})
                    if action is not None:
                        pipe.set(self._action_key(action), action.model_dump_json())
                    if ours:
                        pipe.delete(lease)
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

    def _action_key(self, action: ActionRecord) -> str:
        return self._key("action", action.repository.lower(), action.number, action.version)

    def _lease_key(self, issue: IssueRef) -> str:
        return self._key("lease", issue.repository.lower(), issue.number)

    @unavailable
    async def begin_pass(
        self, action: ActionRecord, holder: str, lease_seconds: float
    ) -> tuple[PassStart, ActionRecord | None, IssueRecord | None]:
        keys = [self._action_key(action), self._lease_key(action.ref), self._issue_key(action.ref)]
        milliseconds = max(1, round(lease_seconds * 1000))
        outcome, done, record = cast(
            list[str],
            await self._begin(keys=keys, args=[holder, milliseconds, action.model_dump_json()]),
        )
        return (
            cast(PassStart, outcome),
            ActionRecord.model_validate_json(done) if done else None,
            IssueRecord.model_validate_json(record) if record else None,
        )

    @unavailable
    async def end_pass(
        self, action: ActionRecord, change: Callable[[IssueRecord], IssueRecord], holder: str
    ) -> IssueRecord:
        return await self._write(action.ref, change, action, holder)

    @unavailable
    async def seen_delivery(self, delivery_id: str) -> bool:
        return bool(await self._redis.exists(self._key("delivery", delivery_id)))

    @unavailable
    async def mark_delivery(self, delivery_id: str, event: str) -> None:
        await self._redis.set(self._key("delivery", delivery_id), event, ex=DELIVERY_TTL_SECONDS)

    @unavailable
    async def lease(self, issue: IssueRef, holder: str, seconds: float) -> bool:
        milliseconds = max(1, round(seconds * 1000))
        return bool(await self._lease(keys=[self._lease_key(issue)], args=[holder, milliseconds]))

    @unavailable
    async def release(self, issue: IssueRef, holder: str) -> None:
        await self._release(keys=[self._lease_key(issue)], args=[holder])

    async def ping(self) -> dict[str, Any]:
        try:
            await self._redis.ping()
        except Exception as exc:  # a health check reports, it never raises
            return {"status": "unhealthy", "backend": "redis", "error": type(exc).__name__}
        return {"status": "healthy", "backend": "redis"}
