"""Health probes of slow or rate-limited dependencies are cached, not repeated per request."""

from __future__ import annotations

from typing import Any

import pytest

from ai_pipeline.observability.probes import CachedProbe

pytestmark = pytest.mark.anyio


class Counting:
    def __init__(self) -> None:
        self.calls = 0

    async def __call__(self) -> dict[str, Any]:
        self.calls += 1
        return {"status": "healthy", "call": self.calls}


async def test_an_answer_is_reused_within_its_lifetime() -> None:
    probe = Counting()
    cached = CachedProbe(probe, ttl=3600)
    first, second = await cached(), await cached()
    assert probe.calls == 1
    assert first["call"] == second["call"] == 1 and "checked_seconds_ago" in second


async def test_an_expired_answer_is_asked_again() -> None:
    probe = Counting()
    cached = CachedProbe(probe, ttl=0)
    await cached()
    assert (await cached())["call"] == 2
