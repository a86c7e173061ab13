"""The in-process limiter's windows and its bounded memory, on a clock the test moves."""

from __future__ import annotations

import pytest

from ai_pipeline.adapters.rate_limits.memory import PRUNE_AT, MemoryRateLimiter

pytestmark = pytest.mark.anyio


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


async def test_the_count_restarts_at_the_next_hour() -> None:
    clock = Clock(7200.0 + 3599.0)
    limiter = MemoryRateLimiter(clock)
    assert (await limiter.hit("k", 1, 3600)).reset_at == 10800.0
    assert not (await limiter.hit("k", 1, 3600)).allowed
    clock.now = 10800.0
    fresh = await limiter.hit("k", 1, 3600)
    assert fresh.allowed and fresh.remaining == 0 and fresh.reset_at == 14400.0


async def test_buckets_of_past_windows_are_dropped_once_the_table_is_full() -> None:
    clock = Clock(0.0)
    limiter = MemoryRateLimiter(clock)
    for n in range(PRUNE_AT):
        await limiter.hit(f"address:{n}", 10, 60)
    clock.now = 60.0
    await limiter.hit("address:new", 10, 60)
    assert len(limiter._counts) == 1  # the table itself: its bound is what is tested
