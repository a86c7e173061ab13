"""Ingest priority: agents are held to their share only while the API is busy."""

from __future__ import annotations

import pytest

from ai_pipeline.agents.priority import CostEstimate, IngestPriority

pytestmark = pytest.mark.anyio


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def saturate(priority: IngestPriority, clock: Clock, seconds: float) -> None:
    """Requests back to back for ``seconds``: the API is busy."""
    priority.request_started()
    clock.now += seconds


async def test_agents_run_unthrottled_while_the_api_is_idle() -> None:
    clock = Clock()
    priority = IngestPriority(share=0.1, burst=0.01, clock=clock)
    for _ in range(100):
        await priority.turn()
        priority.spent(0.05)  # far more than any budget, but nobody is waiting on HTTP
    assert priority.throttled_seconds == 0.0


async def test_a_steady_trickle_of_requests_is_not_load() -> None:
    clock = Clock()
    priority = IngestPriority(share=0.1, burst=0.01, clock=clock)
    for _ in range(50):  # 50 requests a second, a millisecond each
        priority.request_started()
        clock.now += 0.001
        priority.request_finished()
        clock.now += 0.019
        assert not priority.api_busy


async def test_agents_wait_for_their_share_while_the_api_is_busy() -> None:
    clock = Clock()
    priority = IngestPriority(share=0.1, burst=0.01, pause=0.001, clock=clock)
    saturate(priority, clock, 0.5)
    assert priority.api_busy
    await priority.turn()
    priority.spent(0.01)  # the whole burst is used
    clock.now += 0.05  # 50 ms later at a 10 % share: 5 ms of budget back
    await priority.turn()
    priority.spent(0.01)  # overdrawn by 5 ms: the next turn must wait
    assert priority._refill() < 0
    priority.request_finished()
    clock.now += 0.001
    assert priority._refill() < 0  # a gap between requests is not idleness
    clock.now += 1.0
    await priority.turn()  # idle long enough: the debt is forgiven at once
    assert priority._refill() == priority.burst


def test_cost_estimates_learn_only_from_uncontended_measurements() -> None:
    cost = CostEstimate(initial=0.001)
    assert cost.charge(0.5, api_was_busy=True) == 0.001  # inflated by HTTP work: ignored
    for _ in range(50):
        cost.charge(0.004, api_was_busy=False)
    assert cost.value == pytest.approx(0.004, rel=0.01)


def test_share_must_be_a_fraction() -> None:
    with pytest.raises(ValueError):
        IngestPriority(share=0)
