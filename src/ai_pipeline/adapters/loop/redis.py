"""The loop store in Redis, shared by every process. Names carry the key prefix:

- ``conversation:<request_id>`` string: the Conversation JSON, kept ``CONVERSATION_TTL``
  after its last change (an issue may be closed months after filing; the request's own
  record is gone a day after it ended).
- ``conversations:issue:<tracker>:<number>`` set: request ids following that issue.
- ``conversations:needs-info`` sorted set (score 0, by id): conversations with questions
  open on an unresolved issue; ``conversations:resolved`` sorted set scored by when the
  issue was resolved (ms); ``conversations:unresolved`` set: filed issues not resolved.
  Ids whose conversation expired are dropped from them when met.
- ``delivery:<delivery_id>`` string: the Delivery JSON, kept ``DELIVERY_TTL``;
  ``deliveries:due`` sorted set: pending delivery ids scored by when they are due (ms):
  this set, not the JSON, says when a delivery is next tried.
- ``reply:<reply_id>`` string: the ReplyRecord JSON; ``replies:<request_id>`` sorted set
  of its reply ids by time; both kept as long as conversations.
- ``opt-out:<address hash>`` string: when that reporter unsubscribed; never expires.
- ``secret:signing`` string: the link-signing key (base64), set once.
"""

from __future__ import annotations

import base64
import os
from collections.abc import Sequence
from datetime import datetime
from typing import Any, cast

from redis.asyncio import Redis

from ai_pipeline.adapters.redis_client import unavailable
from ai_pipeline.domain.conversation import Conversation
from ai_pipeline.domain.notifications import Delivery, DeliveryState
from ai_pipeline.domain.replies import ReplyRecord

CONVERSATION_TTL = 400 * 86400
DELIVERY_TTL = 30 * 86400

# KEYS: deliveries:due. ARGV: now (ms), lease until (ms), limit, prefix. The due ids and their
# JSON, each pushed to the lease in the same step.
CLAIM_SCRIPT = """
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, ARGV[3])
local out = {}
for _, id in ipairs(due) do
  local doc = redis.call('GET', ARGV[4] .. 'delivery:' .. id)
  if doc then
    redis.call('ZADD', KEYS[1], ARGV[2], id)
    table.insert(out, doc)
  else
    redis.call('ZREM', KEYS[1], id)
  end
end
return out
"""


class RedisLoopStore:
    def __init__(self, redis: Redis, key_prefix: str = ""):
        self._redis = redis
        self._prefix = key_prefix
        self._claim = redis.register_script(CLAIM_SCRIPT)
        self._needs_info = self._key("conversations:needs-info")
        self._resolved = self._key("conversations:resolved")
        self._unresolved = self._key("conversations:unresolved")
        self._due = self._key("deliveries:due")

    def _key(self, name: str) -> str:
        return self._prefix + name

    async def start(self) -> None:
        return None  # connects on first use

    async def close(self) -> None:
        await self._redis.aclose()

    @unavailable
    async def signing_key(self) -> bytes:
        key = self._key("secret:signing")
        await self._redis.set(key, base64.b64encode(os.urandom(32)).decode(), nx=True)
        return base64.b64decode(cast(str, await self._redis.get(key)))

    @unavailable
    async def get_conversation(self, request_id: str) -> Conversation | None:
        raw = await self._redis.get(self._key(f"conversation:{request_id}"))
        return None if raw is None else Conversation.model_validate_json(raw)

    @unavailable
    async def put_conversation(self, conversation: Conversation) -> None:
        c = conversation
        rid = c.request_id
        issue = self._key(f"conversations:issue:{c.tracker}:{c.issue_number}")
        pipe = self._redis.pipeline(transaction=True)
        pipe.set(self._key(f"conversation:{rid}"), c.model_dump_json(), ex=CONVERSATION_TTL)
        pipe.sadd(issue, rid)
        pipe.expire(issue, CONVERSATION_TTL)
        if c.needs_info:
            pipe.zadd(self._needs_info, {rid: 0})
        else:
            pipe.zrem(self._needs_info, rid)
        if c.resolution.state.resolved:
            pipe.zadd(self._resolved, {rid: _ms(c.resolution.at)})
            pipe.srem(self._unresolved, rid)
        else:
            pipe.zrem(self._resolved, rid)
            if c.filed_as == "issue":
                pipe.sadd(self._unresolved, rid)
        await pipe.execute()

    @unavailable
    async def following(self, tracker: str, issue_number: int) -> list[str]:
        ids = await self._redis.smembers(self._key(f"conversations:issue:{tracker}:{issue_number}"))
        return sorted(cast(set[str], ids))

    @unavailable
    async def needing_info(self, limit: int, after: str = "") -> list[Conversation]:
        low = f"({after}" if after else "-"
        ids = cast(list[str], await self._redis.zrangebylex(self._needs_info, low, "+", 0, limit))
        return await self._conversations(ids, self._needs_info)

    @unavailable
    async def resolved_since(self, since: datetime) -> list[Conversation]:
        ids = cast(list[str], await self._redis.zrangebyscore(self._resolved, _ms(since), "+inf"))
        return await self._conversations(ids, self._resolved)

    @unavailable
    async def count_unresolved(self) -> int:
        ids = cast(set[str], await self._redis.smembers(self._unresolved))
        return len(await self._conversations(sorted(ids), self._unresolved))

    async def _conversations(self, ids: Sequence[str], index: str) -> list[Conversation]:
        """The conversations of ``ids`` in order; ids whose conversation expired leave
        ``index`` (a set or a sorted set)."""
        if not ids:
            return []
        raws = await self._redis.mget([self._key(f"conversation:{rid}") for rid in ids])
        gone = [rid for rid, raw in zip(ids, raws, strict=True) if raw is None]
        if gone:
            if index == self._unresolved:
                await self._redis.srem(index, *gone)
            else:
                await self._redis.zrem(index, *gone)
        return [Conversation.model_validate_json(raw) for raw in raws if raw is not None]

    @unavailable
    async def get_delivery(self, delivery_id: str) -> Delivery | None:
        raw = await self._redis.get(self._key(f"delivery:{delivery_id}"))
        return None if raw is None else Delivery.model_validate_json(raw)

    @unavailable
    async def put_delivery(self, delivery: Delivery) -> None:
        did = delivery.delivery_id
        pipe = self._redis.pipeline(transaction=True)
        pipe.set(self._key(f"delivery:{did}"), delivery.model_dump_json(), ex=DELIVERY_TTL)
        due = delivery.next_attempt_at
        if delivery.state is DeliveryState.PENDING and due is not None:
            pipe.zadd(self._due, {did: _ms(due)})
        else:
            pipe.zrem(self._due, did)
        await pipe.execute()

    @unavailable
    async def claim_due(self, now: datetime, lease_until: datetime, limit: int) -> list[Delivery]:
        raws = await self._claim(
            keys=[self._due], args=[_ms(now), _ms(lease_until), limit, self._prefix]
        )
        return [
            Delivery.model_validate_json(raw).model_copy(update={"next_attempt_at": lease_until})
            for raw in raws
        ]

    @unavailable
    async def get_reply(self, reply_id: str) -> ReplyRecord | None:
        raw = await self._redis.get(self._key(f"reply:{reply_id}"))
        return None if raw is None else ReplyRecord.model_validate_json(raw)

    @unavailable
    async def put_reply(self, reply: ReplyRecord) -> None:
        replies = self._key(f"replies:{reply.request_id}")
        pipe = self._redis.pipeline(transaction=True)
        pipe.set(self._key(f"reply:{reply.reply_id}"), reply.model_dump_json(), ex=CONVERSATION_TTL)
        pipe.zadd(replies, {reply.reply_id: _ms(reply.at)})
        pipe.expire(replies, CONVERSATION_TTL)
        await pipe.execute()

    @unavailable
    async def replies_of(self, request_id: str) -> list[ReplyRecord]:
        ids = cast(list[str], await self._redis.zrange(self._key(f"replies:{request_id}"), 0, -1))
        if not ids:
            return []
        raws = await self._redis.mget([self._key(f"reply:{rid}") for rid in ids])
        return [ReplyRecord.model_validate_json(raw) for raw in raws if raw is not None]

    @unavailable
    async def opt_out(self, address_key: str, at: datetime) -> None:
        await self._redis.set(self._key(f"opt-out:{address_key}"), at.isoformat(), nx=True)

    @unavailable
    async def opted_out(self, address_key: str) -> bool:
        return bool(await self._redis.exists(self._key(f"opt-out:{address_key}")))

    async def ping(self) -> dict[str, Any]:
        await self._redis.ping()
        return {"status": "healthy", "backend": "redis"}


def _ms(at: datetime) -> int:
    return int(at.timestamp() * 1000)
