"""Health probes of slow or rate-limited dependencies are cached, not repeated per request."""

from __future__ import annotations

from typing import Any

import anyio
import pytest

from ai_pipeline.observability.probes import CachedProbe, Recent

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


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


async def test_recent_answers_are_shared_for_their_lifetime_then_asked_again() -> None:
    clock, probe = Clock(), Counting()
    recent: Recent[dict[str, Any]] = Recent(ttl=1.0, clock=clock)
    assert (await recent.get("health", probe))["call"] == 1
    clock.now += 0.9
    assert (await recent.get("health", probe))["call"] == 1
    assert (await recent.get("other", probe))["call"] == 2  # each key its own answer
    clock.now += 0.2
    assert (await recent.get("health", probe))["call"] == 3


async def test_callers_asking_while_an_answer_is_computed_share_it() -> None:
    release = anyio.Event()
    calls = 0

    async def slow() -> int:
        nonlocal calls
        calls += 1
        await release.wait()
        return calls

    recent: Recent[int] = Recent(ttl=1.0)
    answers: list[int] = []

    async def ask() -> None:
        answers.append(await recent.get("k", slow))

    async with anyio.create_task_group() as tg:
        for _ in range(20):
            tg.start_soon(ask)
        await anyio.wait_all_tasks_blocked()
        release.set()
    assert calls == 1 and answers == [1] * 20


async def test_a_failure_is_not_kept() -> None:
    attempts = 0

    async def flaky() -> str:
        nonlocal attempts
        attempts += 1
        if attempts == 1:
            raise ConnectionError("store down")
        return "up"

    recent: Recent[str] = Recent(ttl=60.0)
    with pytest.raises(ConnectionError):
        await recent.get("k", flaky)
    assert await recent.get("k", flaky) == "up"
