"""Which steps' waiting requests are stuck, from the agents' heartbeats."""

from __future__ import annotations

import pytest

from ai_pipeline.domain.events import Step
from ai_pipeline.domain.liveness import Heartbeat, StepAgent, steps_not_stuck

NOW = 1_000_000.0
TIMEOUT = 300.0
GITHUB = StepAgent("github_api_agent", "github-api-agent-group", "ticket-creation", Step.GITHUB)
TRIAGE = StepAgent("triage_agent", "triage-agent-group", "bug-reports", Step.TRIAGE)
QUEUED = {(GITHUB.group, GITHUB.topic): 4, (TRIAGE.group, TRIAGE.topic): 9}


def beat(
    agent: StepAgent = GITHUB,
    *,
    idle: float = 0.0,
    waiting_on: str | None = None,
    instance: str = "host:1:a",
) -> Heartbeat:
    return Heartbeat(
        agent=agent.name,
        instance=instance,
        status="degraded" if waiting_on else "running",
        waiting_on=waiting_on,
        reason="GitHub failed (502 Bad Gateway)" if waiting_on else None,
        since=NOW - 1000,
        last_progress=NOW - idle,
        at=NOW,
    )


def spared(*beats: Heartbeat, backlog: dict[tuple[str, str], int] = QUEUED) -> set[Step]:
    return steps_not_stuck([GITHUB, TRIAGE], beats, backlog, TIMEOUT, NOW)


def test_an_agent_waiting_on_a_dependency_is_late_however_long_it_waits() -> None:
    assert GITHUB.step in spared(beat(idle=3 * TIMEOUT, waiting_on="tracker"))
    assert GITHUB.step in spared(beat(idle=3 * TIMEOUT, waiting_on="tracker"), backlog={})


def test_a_step_with_no_live_agent_is_never_judged() -> None:
    """Its process died or was scaled to 0: the reports wait in the log, alerts say so."""
    assert spared() == {Step.GITHUB, Step.TRIAGE}
    assert GITHUB.step in spared(beat(TRIAGE, idle=2 * TIMEOUT))


def test_healthy_agents_working_through_a_backlog_are_moving() -> None:
    assert GITHUB.step in spared(beat(idle=TIMEOUT - 1))


@pytest.mark.parametrize(
    ("idle", "backlog"),
    [(TIMEOUT + 1, QUEUED), (0.0, {})],
    ids=["no-progress-for-a-timeout", "nothing-queued-for-the-waiting-requests"],
)
def test_healthy_live_agents_that_do_not_move_a_request_leave_it_stuck(
    idle: float, backlog: dict[tuple[str, str], int]
) -> None:
    assert GITHUB.step not in spared(beat(idle=idle), beat(TRIAGE), backlog=backlog)


def test_one_instance_of_several_is_enough() -> None:
    idle, busy = beat(idle=2 * TIMEOUT), beat(idle=1.0, instance="host:2:b")
    waiting = beat(idle=2 * TIMEOUT, waiting_on="state", instance="host:3:c")
    assert GITHUB.step not in spared(idle)
    assert GITHUB.step in spared(idle, busy)
    assert GITHUB.step in spared(idle, waiting)


def test_a_heartbeat_survives_its_json() -> None:
    original = beat(waiting_on="bus")
    assert Heartbeat.from_json(original.to_json()) == original
