"""The rate gate: GitHub's limits turned into "wait this long" before a request."""

from __future__ import annotations

import pytest

from ai_pipeline.adapters.trackers.github_pacing import PACING, PRIMARY, SECONDARY, RateGate


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def test_creations_are_paced_per_minute_and_per_hour() -> None:
    clock = Clock()
    gate = RateGate(creations_per_minute=3, creations_per_hour=5, clock=clock)
    for _ in range(3):
        assert gate.wait(creating=True) is None
        gate.created()
        clock.now += 1
    wait = gate.wait(creating=True)
    assert wait is not None and wait.reason == PACING
    assert wait.seconds == pytest.approx(57)  # the first creation ages out of the minute
    assert gate.wait(creating=False) is None  # reads are not paced

    clock.now += 57  # t0 + 60: the first has aged out
    assert gate.wait(creating=True) is None
    gate.created()
    clock.now += 2  # t0 + 62: so has the second
    assert gate.wait(creating=True) is None
    gate.created()
    hourly = gate.wait(creating=True)  # five this hour: the first must age out of it
    assert hourly is not None and hourly.seconds == pytest.approx(3600 - 62)


def test_a_primary_limit_at_zero_closes_the_gate_until_the_reset() -> None:
    clock = Clock()
    gate = RateGate(clock=clock)
    gate.observe({"x-ratelimit-remaining": "12", "x-ratelimit-reset": str(clock.now + 900)})
    assert gate.wait(creating=False) is None
    gate.observe({"x-ratelimit-remaining": "0", "x-ratelimit-reset": str(clock.now + 900)})
    wait = gate.wait(creating=False)
    assert wait is not None and wait.reason == PRIMARY and wait.seconds == pytest.approx(900)
    clock.now += 901
    assert gate.wait(creating=False) is None


def test_a_block_only_ever_lengthens_and_the_longest_wait_wins() -> None:
    clock = Clock()
    gate = RateGate(creations_per_minute=1, clock=clock)
    gate.block(30, SECONDARY)
    gate.block(5, PRIMARY)  # shorter: ignored
    gate.created()
    wait = gate.wait(creating=True)
    assert wait is not None and wait.reason == PACING and wait.seconds == pytest.approx(60)
    read = gate.wait(creating=False)
    assert read is not None and read.reason == SECONDARY and read.seconds == pytest.approx(30)


def test_limits_below_one_are_refused() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        RateGate(creations_per_minute=0)
