"""Fixed-window counters in Redis, so every API replica counts against the same limit.

One key per bucket and window, ``<prefix>ratelimit:<bucket>:<window start ms>``, expiring
with its window. The window is read off Redis's clock, so replicas whose clocks disagree
still share windows. A command resent after a lost reply may count one request twice:
the error is on the client's side of its limit, never past it.
"""

from __future__ import annotations

from typing import cast

from redis.asyncio import Redis

from ai_pipeline.adapters.redis_client import unavailable
from ai_pipeline.ports import RateDecision

# KEYS: the bucket's key without its window. ARGV: window ms. Returns {count, window end ms}.
HIT_SCRIPT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local window = tonumber(ARGV[1])
local ends = now - (now % window) + window
local key = KEYS[1] .. ':' .. (ends - window)
local count = redis.call('INCR', key)
if count == 1 then redis.call('PEXPIREAT', key, ends + 1000) end
return {count, ends}
"""


class RedisRateLimiter:
    def __init__(self, redis: Redis, key_prefix: str = ""):
        self._prefix = f"{key_prefix}ratelimit:"
        self._hit = redis.register_script(HIT_SCRIPT)

    @unavailable
    async def hit(self, bucket: str, limit: int, window_seconds: float) -> RateDecision:
        window_ms = round(window_seconds * 1000)
        count, ends_ms = cast(
            list[int], await self._hit(keys=[self._prefix + bucket], args=[window_ms])
        )
        return RateDecision(
            allowed=count <= limit,
            limit=limit,
            remaining=max(limit - count, 0),
            reset_at=ends_ms / 1000,
            window_seconds=window_seconds,
        )
