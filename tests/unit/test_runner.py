"""The shared consumer loop: retries, dead letters with reasons, and the flow going on."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from pathlib import Path

import pytest

from ai_pipeline.adapters.bus.sqlite import SqliteBus
from ai_pipeline.adapters.sqlite_db import SqliteDatabase
from ai_pipeline.agents.runner import AgentRunner, AgentSpec, RetryPolicy
from ai_pipeline.domain.errors import PermanentError, TransientError, UnavailableError
from ai_pipeline.domain.events import (
    BugReportSubmitted,
    Event,
    Step,
    StepStatus,
    Topic,
    decode,
    encode,
)
from ai_pipeline.observability.metrics import Metrics
from ai_pipeline.ports import Message, OutgoingMessage
from ai_pipeline.settings import DEFAULT_PARTITIONS
from tests.factories import report

pytestmark = pytest.mark.anyio

TOPICS = {**DEFAULT_PARTITIONS, **{f"{t}.dlq": 1 for t in DEFAULT_PARTITIONS}}


def submitted(request_id: str, title: str = "t") -> OutgoingMessage:
    event = BugReportSubmitted(request_id=request_id, report=report(title=title))
    return OutgoingMessage(Topic.BUG_REPORTS.value, request_id, encode(event))


async def collect(bus: SqliteBus, topic: str, count: int, timeout: float = 10.0) -> list[Message]:
    consumer = bus.consumer(f"observer-{topic}", [topic])
    got: list[Message] = []
    async with asyncio.timeout(timeout):
        while len(got) < count:
            got.extend(await consumer.fetch(100, 0.2))
    return got


class Behaviour:
    """A handler whose outcome per title is scripted: ok, transient N times, permanent."""

    def __init__(self) -> None:
        self.calls: dict[str, int] = {}

    async def handle(self, event: Event) -> Sequence[OutgoingMessage]:
        assert isinstance(event, BugReportSubmitted)
        title = event.report.title
        self.calls[title] = self.calls.get(title, 0) + 1
        if title.startswith("flaky") and self.calls[title] <= 2:
            raise TransientError("try again", retry_after=0.01)
        if title.startswith("broken"):
            raise PermanentError("422 Validation Failed: label does not exist")
        if title.startswith("crash"):
            raise RuntimeError("handler bug")
        if title.startswith("outage") and self.calls[title] <= 6:
            raise UnavailableError("state store unreachable", dependency="state")
        if title.startswith("limited") and self.calls[title] <= 3:
            raise UnavailableError("GitHub rate limit", retry_after=0.3)
        done = OutgoingMessage(Topic.TRIAGE_RESULTS.value, event.request_id, b"done")
        return [done]


async def start(tmp_path: Path, behaviour: Behaviour) -> tuple[SqliteBus, AgentRunner]:
    bus = SqliteBus(SqliteDatabase(tmp_path / "b.db"), TOPICS)
    await bus.start()
    spec = AgentSpec(
        "triage_agent", "triage-agent-group", Topic.BUG_REPORTS, behaviour.handle, Step.TRIAGE
    )
    runner = AgentRunner(
        spec, bus, Metrics(), RetryPolicy(max_attempts=3, base_delay=0.01), poll_timeout=0.1
    )
    runner.start()
    return bus, runner


async def test_transient_failures_are_retried_until_they_succeed(tmp_path: Path) -> None:
    behaviour = Behaviour()
    bus, runner = await start(tmp_path, behaviour)
    await bus.publish([submitted("r1", "flaky one")])
    (out,) = await collect(bus, Topic.TRIAGE_RESULTS.value, 1)
    assert out.key == "r1" and behaviour.calls["flaky one"] == 3
    await runner.stop()
    await bus.close()


async def test_a_permanent_error_dead_letters_at_once_with_its_reason(tmp_path: Path) -> None:
    behaviour = Behaviour()
    bus, runner = await start(tmp_path, behaviour)
    await bus.publish([submitted("r1", "broken one")])
    (dead,) = await collect(bus, "bug-reports.dlq", 1)
    assert behaviour.calls["broken one"] == 1
    assert "label does not exist" in dead.headers["dlq-reason"]
    assert dead.headers["dlq-source-topic"] == "bug-reports"
    assert decode(dead.value).request_id == "r1"  # the original message, intact
    (failed,) = await collect(bus, Topic.STATUS_UPDATES.value, 1)
    event = decode(failed.value)
    assert event.kind == "step_changed" and event.status is StepStatus.FAILED
    assert "label does not exist" in (event.error or "")
    await runner.stop()
    await bus.close()


async def test_a_handler_that_keeps_failing_is_dead_lettered_after_max_attempts(
    tmp_path: Path,
) -> None:
    behaviour = Behaviour()
    bus, runner = await start(tmp_path, behaviour)
    await bus.publish([submitted("r1", "crash always")])
    (dead,) = await collect(bus, "bug-reports.dlq", 1)
    assert behaviour.calls["crash always"] == 3
    assert dead.headers["dlq-attempts"] == "3"
    assert "handler bug" in dead.headers["dlq-reason"]
    await runner.stop()
    await bus.close()


async def test_an_outage_of_the_pipeline_itself_never_dead_letters(tmp_path: Path) -> None:
    behaviour = Behaviour()
    bus, runner = await start(tmp_path, behaviour)
    await bus.publish([submitted("r1", "outage long")])
    (out,) = await collect(bus, Topic.TRIAGE_RESULTS.value, 1, timeout=60)
    # Twice max_attempts failed, yet no dead letter: the message was never at fault.
    assert out.key == "r1" and behaviour.calls["outage long"] == 7
    assert runner.health.dead_lettered == 0
    await runner.stop()
    await bus.close()


async def test_a_poison_message_goes_to_the_dead_letter_topic_and_the_rest_flows(
    tmp_path: Path,
) -> None:
    behaviour = Behaviour()
    bus, runner = await start(tmp_path, behaviour)
    poison = OutgoingMessage(Topic.BUG_REPORTS.value, "r-poison", b"{not json")
    await bus.publish([poison, *(submitted(f"r{i}", f"fine {i}") for i in range(10))])
    done = await collect(bus, Topic.TRIAGE_RESULTS.value, 10)
    (dead,) = await collect(bus, "bug-reports.dlq", 1)
    assert {m.key for m in done} == {f"r{i}" for i in range(10)}
    assert dead.key == "r-poison" and "undecodable" in dead.headers["dlq-reason"]
    await runner.stop()
    await bus.close()


async def test_a_stopped_agent_shows_in_its_health(tmp_path: Path) -> None:
    bus, runner = await start(tmp_path, Behaviour())
    assert runner.alive
    await runner.stop()
    assert not runner.alive and runner.health.status.value == "stopped"
    await bus.close()


async def test_a_dependency_that_says_how_long_to_wait_is_waited_for_without_attempts(
    tmp_path: Path,
) -> None:
    behaviour = Behaviour()
    bus, runner = await start(tmp_path, behaviour)
    started = time.monotonic()
    await bus.publish([submitted("r1", "limited by GitHub")])
    (out,) = await collect(bus, Topic.TRIAGE_RESULTS.value, 1)
    waited = time.monotonic() - started
    assert out.key == "r1" and behaviour.calls["limited by GitHub"] == 4  # max_attempts is 3
    assert waited >= 0.9  # three times the 0.3 s the dependency asked for, not the 10 ms backoff
    assert "rate limit" in (runner.health.last_error or "") and runner.health.dead_lettered == 0
    await runner.stop()
    await bus.close()


async def test_an_agent_waiting_on_a_dependency_says_which_in_its_heartbeat(
    tmp_path: Path,
) -> None:
    """Waiting counts as progress, so the sweeper never fails what waits on an outage; the
    next poll that goes through clears it."""
    behaviour = Behaviour()
    bus, runner = await start(tmp_path, behaviour)
    before = runner.health.last_progress
    await bus.publish([submitted("r1", "outage long")])
    async with asyncio.timeout(30):
        while runner.health.waiting_on is None:
            await asyncio.sleep(0.01)
    waiting = runner.health.beat("triage_agent", "host:1:abc")
    (out,) = await collect(bus, Topic.TRIAGE_RESULTS.value, 1, timeout=60)
    async with asyncio.timeout(30):
        while runner.health.waiting_on is not None:
            await asyncio.sleep(0.01)
    after = runner.health.beat("triage_agent", "host:1:abc")

    assert (waiting.waiting_on, waiting.status) == ("state", "degraded")
    assert "state store unreachable" in (waiting.reason or "")
    assert waiting.last_progress > before
    assert (after.waiting_on, after.reason, after.status) == (None, None, "running")
    assert out.key == "r1"
    await runner.stop()
    await bus.close()
