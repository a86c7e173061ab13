"""Outgoing webhooks to a real HTTP receiver that checks the signature: delivered at least
once with a stable delivery id, retried with backoff for 24 hours (an injected clock), then
dead-lettered, and delivered again when the dead letter is replayed to its topic."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import pytest

from ai_pipeline.adapters.bus.sqlite import SqliteBus
from ai_pipeline.adapters.loop.sqlite import SqliteLoopStore
from ai_pipeline.adapters.notify.webhook import HttpWebhookSender
from ai_pipeline.adapters.sqlite_db import SqliteDatabase
from ai_pipeline.agents.delivery import DeliveryAgent, RetryPlan, Senders
from ai_pipeline.agents.messages import to_topic
from ai_pipeline.agents.runner import AgentRunner, AgentSpec, RetryPolicy
from ai_pipeline.domain import notify_plan
from ai_pipeline.domain.events import Topic, decode
from ai_pipeline.domain.links import Links
from ai_pipeline.domain.models import Notify
from ai_pipeline.domain.notifications import DeliveryState, Notification
from ai_pipeline.observability.metrics import Metrics
from ai_pipeline.ports import OutgoingMessage
from ai_pipeline.settings import DEFAULT_PARTITIONS
from tests.fakes.clock import FakeClock
from tests.fakes.loop import conversation
from tests.fakes.webhook_receiver import WebhookReceiver

pytestmark = pytest.mark.anyio
SECRET = b"receiver-shared-secret"
KEY = b"s" * 32


@dataclass
class Rig:
    bus: SqliteBus
    loop: SqliteLoopStore
    agent: DeliveryAgent
    clock: FakeClock
    links: Links
    metrics: Metrics

    def notification(self, url: str) -> Notification:
        c = conversation(notify=Notify(webhook=url), at=self.clock.now)
        (n,) = notify_plan.filed(c, self.clock.now)
        return n

    async def state(self, delivery_id: str) -> DeliveryState:
        delivery = await self.loop.get_delivery(delivery_id)
        assert delivery is not None
        return delivery.state


def make_rig(tmp_path: Path, allow_private: bool = True) -> tuple[SqliteDatabase, Rig]:
    db = SqliteDatabase(tmp_path / "loop.db")
    partitions = {**DEFAULT_PARTITIONS, **{f"{t}.dlq": 1 for t in DEFAULT_PARTITIONS}}
    bus = SqliteBus(db, partitions)
    loop = SqliteLoopStore(db)
    clock = FakeClock()

    async def key() -> bytes:
        return KEY

    links = Links("http://localhost:8000", key)
    metrics = Metrics()
    senders = Senders(
        webhooks=HttpWebhookSender(timeout=5.0, allow_private=allow_private),
        webhook_secret=SECRET,
    )
    agent = DeliveryAgent(loop, bus, senders, links, metrics, RetryPlan(), clock)
    return db, Rig(bus, loop, agent, clock, links, metrics)


@pytest.fixture
async def rig(tmp_path: Path) -> AsyncIterator[Rig]:
    db, r = make_rig(tmp_path)
    await r.bus.start()
    try:
        yield r
    finally:
        assert r.agent.senders.webhooks is not None
        await r.agent.senders.webhooks.close()
        await db.close()


@pytest.fixture
def receiver() -> AsyncIterator[WebhookReceiver]:
    hook = WebhookReceiver(SECRET)
    yield hook  # type: ignore[misc]
    hook.close()


async def until(check: Callable[[], bool], seconds: float = 30.0) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.05)


async def test_a_receiver_failing_three_times_processes_the_event_once(
    rig: Rig, receiver: WebhookReceiver
) -> None:
    receiver.fail_first = 3
    n = rig.notification(receiver.url)
    assert await rig.agent.handle(n) == []
    for _ in range(6):
        rig.clock.advance(hours=1)
        await rig.agent.sweep()
        await rig.agent.handle(n)  # the message redelivered too: nothing more is sent
    assert [r.delivery_id for r in receiver.received] == [n.delivery_id] * 4
    assert all(r.signed for r in receiver.received)
    assert list(receiver.processed) == [n.delivery_id] and receiver.duplicates == 0
    assert await rig.state(n.delivery_id) is DeliveryState.DELIVERED
    body = receiver.processed[n.delivery_id]
    assert body["event"] == "filed" and body["request_id"] == n.request_id
    assert body["issue_url"] == n.issue_url and body["questions"] == n.questions
    assert body["reply_token"] == await rig.links.reply_token(n.request_id)
    assert {r.event for r in receiver.received} == {"filed"}


async def test_retries_back_off_for_24_hours_then_dead_letter_and_a_redrive_delivers(
    rig: Rig, receiver: WebhookReceiver
) -> None:
    receiver.fail_first = 10**6
    n = rig.notification(receiver.url)
    runner = AgentRunner(
        AgentSpec(
            "delivery_agent", "delivery-agent-group", Topic.NOTIFICATIONS, rig.agent.handle, None
        ),
        rig.bus,
        rig.metrics,
        RetryPolicy(base_delay=0.01, max_delay=0.05),
        poll_timeout=0.05,
    )
    runner.start()
    try:
        await rig.bus.publish([to_topic(Topic.NOTIFICATIONS, n.request_id, n)])
        await until(lambda: len(receiver.received) == 1)
        started = rig.clock.now
        gaps = []
        while await rig.state(n.delivery_id) is DeliveryState.PENDING:
            assert rig.clock.now - started < timedelta(hours=30), "never dead-lettered"
            before = len(receiver.received)
            rig.clock.advance(minutes=15)
            await rig.agent.sweep()
            if len(receiver.received) > before:
                gaps.append(rig.clock.now)
        tries = len(receiver.received)
        assert rig.clock.now - started >= timedelta(hours=24)
        # Backoff: far fewer tries than sweeps (96 a day), the gaps growing to an hour.
        assert 20 <= tries <= 40
        dead = await rig.bus.peek(Topic.NOTIFICATIONS.dead_letter, 10)
        assert len(dead) == 1
        letter = dead[0]
        assert letter.headers["dlq-source-topic"] == "notifications"
        assert letter.headers["dlq-agent"] == "delivery_agent"
        assert "503" in letter.headers["dlq-reason"]
        replayed = decode(letter.value)
        assert isinstance(replayed, Notification) and replayed.delivery_id == n.delivery_id
        # The receiver is fixed; the dead letter is replayed to its source topic, as
        # `ai-pipeline redrive --dead-letters notifications.dlq` does.
        receiver.fail_first = 0
        with receiver.lock:
            receiver.received.clear()
        source = letter.headers["dlq-source-topic"]
        await rig.bus.publish([OutgoingMessage(source, letter.key, letter.value)])
        await until(lambda: n.delivery_id in receiver.processed)
        assert await rig.state(n.delivery_id) is DeliveryState.DELIVERED
        assert len(receiver.received) == 1 and receiver.duplicates == 0
    finally:
        await runner.stop()


async def test_a_refusal_is_dead_lettered_at_once(rig: Rig, receiver: WebhookReceiver) -> None:
    receiver.fail_first, receiver.status_when_failing = 1, 410
    n = rig.notification(receiver.url)
    (letter,) = await rig.agent.handle(n)
    assert letter.topic == "notifications.dlq" and "410" in letter.headers["dlq-reason"]
    assert await rig.state(n.delivery_id) is DeliveryState.DEAD
    assert len(receiver.received) == 1


async def test_a_url_on_a_private_address_is_never_called(
    tmp_path: Path, receiver: WebhookReceiver
) -> None:
    db, strict = make_rig(tmp_path, allow_private=False)
    await strict.bus.start()
    try:
        n = strict.notification(receiver.url)  # 127.0.0.1
        (letter,) = await strict.agent.handle(n)
        assert "non-public address" in letter.headers["dlq-reason"]
        assert receiver.received == []
    finally:
        assert strict.agent.senders.webhooks is not None
        await strict.agent.senders.webhooks.close()
        await db.close()
