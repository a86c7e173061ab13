"""A health probe whose answer is reused for a while.

Kubernetes asks every few seconds, per pod; the tracker's answer (a GitHub API call,
counted against the token's rate limit) does not change that fast.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any


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
