"""Fixed-window counters in this process: the embedded deployment has one API process."""

from __future__ import annotations

import math
import time
from collections.abc import Callable

from ai_pipeline.ports import RateDecision

# Expired windows are dropped once the table holds this many buckets, so memory stays
# bounded by the buckets active in one window (keys plus client addresses).
PRUNE_AT = 10_000


class MemoryRateLimiter:
    def __init__(self, clock: Callable[[], float] = time.time):
        self._clock = clock
        self._counts: dict[str, tuple[float, int]] = {}  # bucket → (window end, count)
        self._prune_at = PRUNE_AT

    async def hit(self, bucket: str, limit: int, window_seconds: float) -> RateDecision:
        now = self._clock()
        # Windows aligned to the epoch, as in the Redis limiter: every bucket resets together.
        reset_at = (math.floor(now / window_seconds) + 1) * window_seconds
        ends, count = self._counts.get(bucket, (reset_at, 0))
        count = count + 1 if ends == reset_at else 1
        if len(self._counts) >= self._prune_at:
            self._counts = {b: v for b, v in self._counts.items() if v[0] > now}
            # Still many live buckets: prune again only once they have doubled, so a
            # sweep costs O(1) per request amortised rather than one sweep per request.
            self._prune_at = max(PRUNE_AT, 2 * len(self._counts))
        self._counts[bucket] = (reset_at, count)
        return RateDecision(
            allowed=count <= limit,
            limit=limit,
            remaining=max(limit - count, 0),
            reset_at=reset_at,
            window_seconds=window_seconds,
        )
