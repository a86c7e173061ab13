"""Health answers reused for a while.

Kubernetes asks every few seconds, per pod; the tracker's answer (a GitHub API call,
counted against the token's rate limit) does not change that fast, and neither do the
store's and Kafka's answers within a second.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Hashable
from typing import Any, Generic, TypeVar

T = TypeVar("T")


class CachedProbe:
    def __init__(self, probe: Callable[[], Awaitable[dict[str, Any]]], ttl: float = 30.0):
        self._probe = probe
        self._ttl = ttl
        self._answer: dict[str, Any] | None = None
        self._at = 0.0

    async def __call__(self) -> dict[str, Any]:
        now = time.monotonic()
        if self._answer is None or now - self._at >= self._ttl:
            self._answer = await self._probe()
            self._at = now
        return {**self._answer, "checked_seconds_ago": round(now - self._at, 1)}


class Recent(Generic[T]):
    """Answers reused for ``ttl`` seconds, per key, and shared while being computed: many
    probes and scrapers asking at once cost the store (and Kafka) one query, not one each.
    A failure is not kept: the next caller asks again."""

    def __init__(self, ttl: float, clock: Callable[[], float] = time.monotonic):
        self._ttl = ttl
        self._clock = clock
        self._answers: dict[Hashable, tuple[float, T]] = {}
        self._running: dict[Hashable, asyncio.Future[T]] = {}

    async def get(self, key: Hashable, compute: Callable[[], Awaitable[T]]) -> T:
        answer = self._answers.get(key)
        if answer is not None and self._clock() - answer[0] < self._ttl:
            return answer[1]
        running = self._running.get(key)
        if running is None:
            running = asyncio.ensure_future(self._compute(key, compute))
            self._running[key] = running
        # Shielded: a caller that gives up (a probe's timeout) leaves the others their answer.
        return await asyncio.shield(running)

    async def _compute(self, key: Hashable, compute: Callable[[], Awaitable[T]]) -> T:
        try:
            value = await compute()
            self._answers[key] = (self._clock(), value)
            return value
        finally:
            del self._running[key]
