"""The Kafka bus against a real single-node broker (started by the ``kafka_broker`` fixture)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from confluent_kafka import Producer

from ai_pipeline.adapters.bus.kafka import KafkaBus, KafkaOptions, bootstrap_servers
from ai_pipeline.agents.runner import AgentRunner, AgentSpec, RetryPolicy
from ai_pipeline.domain.errors import UnavailableError
from ai_pipeline.domain.events import BugReportSubmitted, Event, Step, Topic, encode
from ai_pipeline.observability.metrics import Metrics
from ai_pipeline.ports import Message, OutgoingMessage
from tests.factories import report
from tests.service import local_services

pytestmark = pytest.mark.anyio

GROUP = "test-group"
TOPICS = {"bug-reports": 4, "bug-reports.dlq": 1, "status-updates": 2, "status-updates.dlq": 1}


def make_bus(
    kafka_broker: Any, prefix: str, topics: dict[str, int] | None = None, **options: Any
) -> KafkaBus:
    settings = KafkaOptions(
        topic_prefix=prefix,
        session_timeout_ms=6000,
        metadata_refresh_ms=1000,
        commit_interval_s=0.0,
        **options,
    )
    return KafkaBus(
        f"kafka://{kafka_broker.bootstrap}",
        topics or TOPICS,
        {GROUP: ["bug-reports"], "status-group": ["status-updates"]},
        settings,
    )


@pytest.fixture
async def bus(kafka_broker: Any) -> AsyncIterator[KafkaBus]:
    bus = make_bus(kafka_broker, f"t{uuid.uuid4().hex[:8]}.")
    await bus.start()
    try:
        yield bus
    finally:
        await bus.close()


def describe(kafka_broker: Any, topic: str) -> str:
    """What an operator's ``kafka-topics.sh --describe`` prints."""
    result = kafka_broker.tool(
        local_services.TOPIC_COMMAND,
        "--bootstrap-server",
        kafka_broker.bootstrap,
        "--describe",
        "--topic",
        topic,
    )
    return str(result.stdout)


def messages(n: int, topic: str = "bug-reports") -> list[OutgoingMessage]:
    return [
        OutgoingMessage(topic, f"key-{i}", f"value-{i}".encode(), {"n": str(i)}) for i in range(n)
    ]


async def drain(consumer: Any, want: int, timeout: float = 60) -> list[Message]:
    """Fetch and commit until ``want`` messages came (or the time is up)."""
    got: list[Message] = []
    deadline = asyncio.get_running_loop().time() + timeout
    while len(got) < want and asyncio.get_running_loop().time() < deadline:
        for message in await consumer.fetch(100, 0.5):
            got.append(message)
            await consumer.commit(message, [])
    return got


def test_bootstrap_servers_are_read_from_the_url() -> None:
    assert bootstrap_servers("kafka://a:1,b:2") == "a:1,b:2"
    with pytest.raises(ValueError):
        bootstrap_servers("sqlite:///x.db")
    with pytest.raises(ValueError):
        bootstrap_servers("kafka://")


async def test_topics_are_created_idempotently_with_their_partitions(
    kafka_broker: Any, bus: KafkaBus
) -> None:
    again = make_bus(kafka_broker, bus.options.topic_prefix)
    await again.start()  # the topics exist now: no error, nothing changes
    await again.close()
    assert "PartitionCount: 4" in describe(kafka_broker, bus.physical("bug-reports"))


async def test_published_messages_reach_a_group_once_and_offsets_survive_a_restart(
    bus: KafkaBus,
) -> None:
    await bus.publish(messages(50))
    first = bus.consumer(GROUP, ["bug-reports"])
    got = await drain(first, 50)
    await first.close()
    assert sorted(m.key for m in got) == sorted(f"key-{i}" for i in range(50))
    assert {m.topic for m in got} == {"bug-reports"}  # logical names, prefix hidden
    assert got[0].headers["n"] == got[0].key.removeprefix("key-")
    # Committed: a new member of the group gets only what came after.
    await bus.publish(messages(5))
    second = bus.consumer(GROUP, ["bug-reports"])
    later = await drain(second, 5, timeout=30)
    extra = await second.fetch(100, 2.0)
    await second.close()
    assert len(later) == 5 and extra == []
    assert (await bus.lag())[(GROUP, "bug-reports")] == 0


async def test_a_key_keeps_its_partition_and_its_order(bus: KafkaBus) -> None:
    ordered = [OutgoingMessage("bug-reports", "one-request", str(i).encode()) for i in range(30)]
    await bus.publish(ordered)
    consumer = bus.consumer(GROUP, ["bug-reports"])
    got = await drain(consumer, 30)
    await consumer.close()
    assert len({m.partition for m in got}) == 1
    assert [int(m.value) for m in got] == list(range(30))


async def test_uncommitted_messages_are_redelivered_after_a_rewind(bus: KafkaBus) -> None:
    await bus.publish([OutgoingMessage("bug-reports", "k", str(i).encode()) for i in range(5)])
    consumer = bus.consumer(GROUP, ["bug-reports"])
    got: list[Message] = []
    while len(got) < 5:
        got.extend(await consumer.fetch(10, 0.5))
    await consumer.commit(got[0], [])
    await consumer.rewind(got[1])  # the handler of got[1] failed
    again: list[Message] = []
    while len(again) < 4:
        again.extend(await consumer.fetch(10, 0.5))
    await consumer.close()
    assert [int(m.value) for m in again] == [1, 2, 3, 4]


async def test_outputs_are_published_before_the_offset_moves(bus: KafkaBus) -> None:
    await bus.publish(messages(3))
    consumer = bus.consumer(GROUP, ["bug-reports"])
    got: list[Message] = []
    while len(got) < 3:
        got.extend(await consumer.fetch(10, 0.5))
    for m in got:
        await consumer.commit(m, [OutgoingMessage("status-updates", m.key, b"out:" + m.value)])
    await consumer.close()
    replayed = [m async for chunk in bus.replay("status-updates") for m in chunk]
    assert sorted(m.value for m in replayed) == sorted(b"out:" + m.value for m in got)


async def test_a_message_whose_outputs_were_lost_is_redelivered_not_committed(
    kafka_broker: Any,
) -> None:
    bus = make_bus(kafka_broker, f"t{uuid.uuid4().hex[:8]}.", delivery_timeout_ms=1500)
    await bus.start()
    await bus.publish([OutgoingMessage("bug-reports", "r1", b"report")])
    consumer = bus.consumer(GROUP, ["bug-reports"])
    (message,) = await drain_uncommitted(consumer, 1)
    kafka_broker.stop()
    try:
        # Handled, its output queued, but the broker never acknowledges it.
        await consumer.commit(message, [OutgoingMessage("status-updates", "r1", b"triaged")])
        await asyncio.sleep(3)
        with pytest.raises(UnavailableError):
            await consumer.fetch(10, 0.5)
    finally:
        kafka_broker.start()
    (again,) = await drain_uncommitted(consumer, 1, timeout=90)
    assert (again.partition, again.offset) == (message.partition, message.offset)
    await consumer.commit(again, [OutgoingMessage("status-updates", "r1", b"triaged")])
    await consumer.close()
    outputs = [m.value async for chunk in bus.replay("status-updates") for m in chunk]
    assert outputs == [b"triaged"]
    assert (await bus.lag())[(GROUP, "bug-reports")] == 0
    await bus.close()


async def drain_uncommitted(consumer: Any, want: int, timeout: float = 60) -> list[Message]:
    got: list[Message] = []
    deadline = asyncio.get_running_loop().time() + timeout
    while len(got) < want and asyncio.get_running_loop().time() < deadline:
        got.extend(await consumer.fetch(10, 0.5))
    return got


async def test_lag_counts_what_a_group_has_not_consumed(bus: KafkaBus) -> None:
    await bus.publish(messages(40))
    lag = await bus.lag()
    assert lag[(GROUP, "bug-reports")] == 40  # no member yet: everything is behind
    assert lag[("status-group", "status-updates")] == 0
    consumer = bus.consumer(GROUP, ["bug-reports"])
    await drain(consumer, 40)
    await consumer.close()
    assert (await bus.lag())[(GROUP, "bug-reports")] == 0
    health = await bus.ping()
    assert health["status"] == "healthy" and health["brokers"] == 1


async def test_two_members_share_the_partitions_and_a_leaver_hands_over(bus: KafkaBus) -> None:
    await bus.publish(messages(200))
    a, b = bus.consumer(GROUP, ["bug-reports"]), bus.consumer(GROUP, ["bug-reports"])
    got_a: list[Message] = []
    got_b: list[Message] = []

    async def run(consumer: Any, sink: list[Message], stop: asyncio.Event) -> None:
        while not stop.is_set():
            for message in await consumer.fetch(20, 0.3):
                sink.append(message)
                await consumer.commit(message, [])

    stop_a, stop_b = asyncio.Event(), asyncio.Event()
    task_a = asyncio.create_task(run(a, got_a, stop_a))
    task_b = asyncio.create_task(run(b, got_b, stop_b))
    for _ in range(300):
        if len({m.key for m in got_a + got_b}) >= 200:
            break
        await asyncio.sleep(0.1)
    stop_a.set()
    await task_a
    await a.close()  # leaves the group: b takes over a's partitions
    await bus.publish(messages(100, "bug-reports"))
    for _ in range(300):
        if len(got_b) >= 100 and (await bus.lag())[(GROUP, "bug-reports")] == 0:
            break
        await asyncio.sleep(0.1)
    stop_b.set()
    await task_b
    await b.close()
    assert {m.key for m in got_a + got_b} == {f"key-{i}" for i in range(200)}
    assert {m.partition for m in got_b} == {0, 1, 2, 3}
    assert (await bus.lag())[(GROUP, "bug-reports")] == 0


async def test_partitions_raised_while_consuming_are_picked_up(
    kafka_broker: Any, bus: KafkaBus
) -> None:
    consumer = bus.consumer(GROUP, ["bug-reports"])
    await bus.publish(messages(20))
    got = await drain(consumer, 20)
    grown = make_bus(kafka_broker, bus.options.topic_prefix, {**TOPICS, "bug-reports": 8})
    await grown.start()  # raises bug-reports from 4 to 8 partitions
    await grown.publish(messages(200))
    got += await drain(consumer, 200, timeout=90)
    await grown.close()
    await consumer.close()
    assert len(got) == 220
    assert max(m.partition for m in got) >= 4  # the new partitions were read too
    assert "PartitionCount: 8" in describe(kafka_broker, bus.physical("bug-reports"))


async def test_peek_shows_the_newest_messages_first(bus: KafkaBus) -> None:
    for i in range(5):
        await bus.publish(
            [OutgoingMessage("bug-reports.dlq", f"k{i}", b"x", {"dlq-reason": str(i)})]
        )
    newest = await bus.peek("bug-reports.dlq", 3)
    assert [m.headers["dlq-reason"] for m in newest] == ["4", "3", "2"]


async def test_a_poison_message_is_dead_lettered_and_the_rest_keeps_flowing(
    kafka_broker: Any, bus: KafkaBus
) -> None:
    handled: list[str] = []

    async def handle(event: Event) -> list[OutgoingMessage]:
        assert isinstance(event, BugReportSubmitted)
        handled.append(event.request_id)
        return []

    spec = AgentSpec("triage_agent", GROUP, Topic.BUG_REPORTS, handle, Step.TRIAGE)
    runner = AgentRunner(spec, bus, Metrics(), RetryPolicy(max_attempts=2, base_delay=0.01))
    good = [BugReportSubmitted(request_id=f"r{i}", report=report(id=f"bug-{i}")) for i in range(10)]
    await bus.publish([OutgoingMessage("bug-reports", e.request_id, encode(e)) for e in good[:5]])
    # Garbage straight from another producer, as a misbehaving client would send it.
    raw = Producer({"bootstrap.servers": kafka_broker.bootstrap})
    raw.produce(bus.physical("bug-reports"), key=b"poison", value=b"\x00not json{")
    raw.flush(10)
    await bus.publish([OutgoingMessage("bug-reports", e.request_id, encode(e)) for e in good[5:]])
    runner.start()
    try:
        for _ in range(600):
            if len(set(handled)) == 10 and runner.health.dead_lettered == 1:
                break
            await asyncio.sleep(0.1)
    finally:
        await runner.stop()
    assert sorted(set(handled)) == sorted(e.request_id for e in good)
    (dead,) = await bus.peek("bug-reports.dlq", 10)
    assert dead.key == "poison" and dead.value == b"\x00not json{"
    assert "undecodable" in dead.headers["dlq-reason"]
    assert dead.headers["dlq-source-topic"] == "bug-reports"
    failed = [m async for chunk in bus.replay("status-updates") for m in chunk]
    assert [m.key for m in failed] == ["poison"]  # the poison request's triage step failed
