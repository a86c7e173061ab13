"""Ingest priority: agents are held to their share only while HTTP requests are in flight."""

from __future__ import annotations

import pytest

from ai_pipeline.agents.priority import IngestPriority

pytestmark = pytest.mark.anyio


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


async def test_agents_run_unthrottled_while_the_api_is_idle() -> None:
    clock = Clock()
    priority = IngestPriority(share=0.1, burst=0.01, clock=clock)
    for _ in range(100):
        await priority.turn()
        priority.spent(0.05)  # far more than any budget, but nobody is waiting on HTTP
    assert priority.throttled_seconds == 0.0


async def test_agents_wait_for_their_share_while_requests_are_in_flight() -> None:
    clock = Clock()
    priority = IngestPriority(share=0.1, burst=0.01, pause=0.001, clock=clock)
    priority.request_started()
    await priority.turn()
    priority.spent(0.01)  # the whole burst is used
    clock.now += 0.05  # 50 ms later at a 10 % share: 5 ms of budget back
    await priority.turn()
    priority.spent(0.01)  # overdrawn by 5 ms: the next turn must wait for ~50 ms more
    assert priority._refill() < 0
    priority.request_finished()
    assert priority._refill() < 0  # just finished: a gap between requests is not idleness
    clock.now += priority.idle_after
    await priority.turn()  # idle long enough: the debt is forgiven at once
    assert priority._refill() == priority.burst


def test_share_must_be_a_fraction() -> None:
    with pytest.raises(ValueError):
        IngestPriority(share=0)
