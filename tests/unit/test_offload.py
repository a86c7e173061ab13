"""Work on report text runs off the event loop, within a budget per report; a report over
its budget is dead-lettered with the reason, and the reports after it are handled."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Sequence
from pathlib import Path

import pytest

from ai_pipeline.adapters.bus.sqlite import SqliteBus
from ai_pipeline.adapters.sqlite_db import SqliteDatabase
from ai_pipeline.agents import offload
from ai_pipeline.agents.offload import OverBudget, off_loop, report_budget
from ai_pipeline.agents.runner import AgentRunner, AgentSpec, RetryPolicy
from ai_pipeline.agents.ticket_creation import TicketCreationAgent
from ai_pipeline.domain.errors import PermanentError
from ai_pipeline.domain.events import IssueDrafted, ReportTriaged, Step, Topic, decode, encode
from ai_pipeline.domain.models import BugReport, IssueDraft, TriageResult
from ai_pipeline.domain.redaction import Redactor
from ai_pipeline.drafting.template import render
from ai_pipeline.observability.metrics import Metrics
from ai_pipeline.ports import OutgoingMessage
from ai_pipeline.settings import DEFAULT_PARTITIONS
from tests.factories import report, triage
from tests.unit.test_runner import collect

pytestmark = pytest.mark.anyio

TOPICS = {**DEFAULT_PARTITIONS, **{f"{t}.dlq": 1 for t in DEFAULT_PARTITIONS}}


async def test_work_runs_on_a_worker_thread_and_returns_its_result() -> None:
    assert await off_loop(threading.get_ident) != threading.get_ident()
    assert await off_loop(sorted, [3, 1, 2], reverse=True) == [3, 2, 1]


async def test_the_event_loop_keeps_running_while_work_runs() -> None:
    """The work waits until the loop has ticked a hundred times: it can only return if the
    loop was free all along."""
    ticks, enough = 0, threading.Event()

    async def ticker() -> None:
        nonlocal ticks
        while not enough.is_set():
            ticks += 1
            if ticks >= 100:
                enough.set()
            await asyncio.sleep(0)

    task = asyncio.create_task(ticker())
    with report_budget(60):
        assert await off_loop(enough.wait, 60) is True
    await task
    assert ticks >= 100


async def test_work_over_the_budget_raises_a_permanent_error_naming_the_setting() -> None:
    release = threading.Event()
    try:
        with report_budget(0.05), pytest.raises(OverBudget) as raised:
            await off_loop(release.wait, 60)
    finally:
        release.set()
    assert isinstance(raised.value, PermanentError)
    assert "AI_PIPELINE_REPORT_CPU_BUDGET_SECONDS" in str(raised.value)
    assert "0.05 s" in str(raised.value)


def burn_cpu(seconds: float) -> float:
    """Spin on this thread until it has used ``seconds`` of CPU time."""
    start = time.thread_time()
    while time.thread_time() - start < seconds:
        pass
    return time.thread_time() - start


async def test_the_budget_counts_cpu_time_not_time_on_a_busy_clock() -> None:
    """Work that waits on the clock (as on a box busy with other processes) for three times
    its budget, without spending CPU, is not over it; work that spends the CPU is."""
    with report_budget(0.1) as budget:
        await off_loop(time.sleep, 0.3)
        assert budget.remaining > 0.05
    with report_budget(0.1), pytest.raises(OverBudget):
        await off_loop(burn_cpu, 1.0)


async def test_work_that_stays_on_the_clock_far_past_its_budget_is_over_it() -> None:
    release = threading.Event()
    try:
        with report_budget(0.02) as budget, pytest.raises(OverBudget):
            await off_loop(release.wait, 60)
        assert budget.remaining <= 0
    finally:
        release.set()
    assert offload.WALL_FACTOR * 0.02 < 60


async def test_the_budget_is_shared_by_every_piece_of_work_on_the_report() -> None:
    release = threading.Event()
    ran = []
    with report_budget(0.05) as budget:
        try:
            with pytest.raises(OverBudget):
                await off_loop(release.wait, 60)
        finally:
            release.set()
        assert budget.remaining <= 0
        with pytest.raises(OverBudget):  # spent: the next piece does not even start
            await off_loop(ran.append, 1)
    assert ran == []
    with report_budget(60):  # the next report has a budget of its own
        await off_loop(ran.append, 2)
    assert ran == [2]


async def test_waiting_for_a_free_worker_is_not_charged_to_the_budget() -> None:
    """Every worker is held by work that overran (as after hostile reports); a quick piece
    of work queued behind them still completes within a small budget."""
    release = threading.Event()
    blockers = [asyncio.ensure_future(off_loop(release.wait, 60)) for _ in range(offload.WORKERS)]
    with report_budget(0.5):
        queued = asyncio.ensure_future(off_loop(sum, [1, 2, 3]))
        for _ in range(50):  # the queued work has been waiting, in loop turns, not seconds
            await asyncio.sleep(0)
        assert not queued.done()
        release.set()
        assert await queued == 6
    await asyncio.gather(*blockers)


# -------------------------------------------------- through the runner, as the agents run


class SlowDrafter:
    """The template drafter, except that a report titled "slow…" never finishes rendering
    until released: an overrun that does not depend on how fast the machine is."""

    def __init__(self) -> None:
        self.release = threading.Event()

    async def draft(self, request_id: str, report: BugReport, triage: TriageResult) -> IssueDraft:
        def render_slowly() -> IssueDraft:
            if report.title.startswith("slow"):
                self.release.wait(60)
            return render(request_id, report, triage)

        return await off_loop(render_slowly)


def triaged(request_id: str, title: str) -> OutgoingMessage:
    event = ReportTriaged(request_id=request_id, report=report(title=title), triage=triage())
    return OutgoingMessage(Topic.TRIAGE_RESULTS.value, request_id, encode(event))


async def test_a_report_over_its_budget_is_dead_lettered_and_the_next_ones_are_drafted(
    tmp_path: Path,
) -> None:
    drafter = SlowDrafter()
    agent = TicketCreationAgent(Redactor(), drafter, cpu_budget=0.2)
    bus = SqliteBus(SqliteDatabase(tmp_path / "b.db"), TOPICS)
    await bus.start()
    spec = AgentSpec(
        "ticket_creation_agent",
        "ticket-creation-agent-group",
        Topic.TRIAGE_RESULTS,
        agent.handle,
        Step.TICKET_CREATION,
    )
    runner = AgentRunner(
        spec, bus, Metrics(), RetryPolicy(max_attempts=3, base_delay=0.01), poll_timeout=0.1
    )
    runner.start()
    try:
        await bus.publish([triaged("r-slow", "slow hostile report")])
        await bus.publish([triaged(f"r{i}", f"ordinary report {i}") for i in range(3)])
        drafted = await collect(bus, Topic.TICKET_CREATION.value, 3, timeout=60)
        (dead,) = await collect(bus, "triage-results.dlq", 1, timeout=60)
    finally:
        drafter.release.set()
        await runner.stop()
        await bus.close()
    assert {m.key for m in drafted} == {"r0", "r1", "r2"}
    assert all(isinstance(decode(m.value), IssueDrafted) for m in drafted)
    assert dead.key == "r-slow"
    assert dead.headers["dlq-attempts"] == "1"  # not retried: it would overrun again
    assert "AI_PIPELINE_REPORT_CPU_BUDGET_SECONDS" in dead.headers["dlq-reason"]


async def test_budgets_of_reports_handled_side_by_side_are_their_own() -> None:
    release = threading.Event()

    async def hostile() -> None:
        with report_budget(0.05):
            await off_loop(release.wait, 60)

    async def ordinary() -> int:
        with report_budget(60):
            return await off_loop(sum, [1, 2])

    try:
        outcomes = await asyncio.gather(hostile(), ordinary(), return_exceptions=True)
    finally:
        release.set()
    assert isinstance(outcomes[0], OverBudget) and outcomes[1] == 3


def test_work_outside_any_report_has_no_budget() -> None:
    async def run() -> Sequence[int]:
        return await off_loop(list, range(3))

    assert asyncio.run(run()) == [0, 1, 2]
