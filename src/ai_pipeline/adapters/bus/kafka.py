"""The distributed bus: Apache Kafka through confluent-kafka (librdkafka).

librdkafka's calls block, so each consumer owns one thread that makes all of its calls in
order (librdkafka wants that of a consumer); the producer's delivery reports come from a
polling thread and resolve asyncio futures on the loop. Offsets move only forward, only
after a message's outputs are acknowledged by the broker (``acks=all``, idempotent
producer), and are committed in batches before each fetch, on revocation and on close.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
import uuid
from collections import Counter, defaultdict, deque
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, TypeVar

from confluent_kafka import (
    OFFSET_BEGINNING,
    Consumer,
    ConsumerGroupTopicPartitions,
    KafkaError,
    KafkaException,
    Producer,
    TopicPartition,
)
from confluent_kafka import Message as KafkaMessage
from confluent_kafka.admin import AdminClient
from confluent_kafka.admin._listoffsets import OffsetSpec
from confluent_kafka.cimpl import NewPartitions, NewTopic

from ai_pipeline.domain.errors import UnavailableError
from ai_pipeline.observability.logging import get_logger
from ai_pipeline.ports import Message, OutgoingMessage

log = get_logger(__name__)
T = TypeVar("T")


@dataclass(frozen=True)
class KafkaOptions:
    """The client settings the runbook tunes, in librdkafka's units."""

    fetch_min_bytes: int = 8192
    fetch_max_wait_ms: int = 50
    session_timeout_ms: int = 10_000
    max_poll_interval_ms: int = 300_000
    linger_ms: float = 10.0
    delivery_timeout_ms: int = 120_000
    metadata_refresh_ms: int = 30_000
    replication_factor: int = 1
    retention_ms: int = 7 * 24 * 3600 * 1000
    commit_interval_s: float = 0.2
    topic_prefix: str = ""
    # Anything else librdkafka accepts (TLS, SASL, …), passed to every client as is.
    extra: Mapping[str, str] = field(default_factory=dict)


def bootstrap_servers(url: str) -> str:
    """``kafka://host:port,host:port`` → ``host:port,host:port``."""
    if not url.startswith("kafka://"):
        raise ValueError(f"not a kafka:// URL: {url!r}")
    servers = url.removeprefix("kafka://").strip("/")
    if not servers:
        raise ValueError("kafka:// URL names no broker")
    return servers


class KafkaBus:
    def __init__(
        self,
        url: str,
        topics: Mapping[str, int],
        groups: Mapping[str, Sequence[str]],
        options: KafkaOptions | None = None,
    ):
        """``topics``: logical name → partitions wanted; ``groups``: the consumer groups
        whose lag this bus reports, with their topics (also when no member runs here)."""
        self.options = options or KafkaOptions()
        self.servers = bootstrap_servers(url)
        self._wanted = dict(topics)
        self._groups = {g: list(t) for g, t in groups.items()}
        self.published: Counter[str] = Counter()
        self.last_lag: dict[tuple[str, str], int] = {}
        self._producer: Producer | None = None
        self._admin: AdminClient | None = None
        self._poller: threading.Thread | None = None
        self._running = threading.Event()

    # Names: the prefix lets tenants (and tests) share a cluster; agents see logical names.
    def physical(self, name: str) -> str:
        return f"{self.options.topic_prefix}{name}"

    def logical(self, name: str) -> str:
        return name.removeprefix(self.options.topic_prefix)

    def client_config(self, **overrides: Any) -> dict[str, Any]:
        return {
            "bootstrap.servers": self.servers,
            "logger": _LibrdkafkaLog(),
            **self.options.extra,
            **overrides,
        }

    async def start(self) -> None:
        self._admin = AdminClient(self.client_config())
        await self._ensure_topics()
        self._producer = Producer(
            self.client_config(
                **{
                    "enable.idempotence": True,
                    "acks": "all",
                    "linger.ms": self.options.linger_ms,
                    "delivery.timeout.ms": self.options.delivery_timeout_ms,
                    "topic.metadata.refresh.interval.ms": self.options.metadata_refresh_ms,
                    "compression.type": "lz4",
                }
            )
        )
        self._running.set()
        self._poller = threading.Thread(target=self._poll_deliveries, daemon=True)
        self._poller.start()

    def _poll_deliveries(self) -> None:
        producer = self._producer
        assert producer is not None
        while self._running.is_set():
            producer.poll(0.05)

    async def _ensure_topics(self) -> None:
        """Create missing topics; grow partition counts that are below what is wanted.

        Counts never shrink (Kafka cannot, and keys would move). Growing is safe for us:
        consumers start new partitions from the beginning, and a request's events that
        straddle the change are folded by rank, so order across partitions is not needed.
        """
        admin = self._admin_client()
        existing = await self._partition_counts(list(self._wanted))
        missing = [
            NewTopic(
                self.physical(name),
                num_partitions=count,
                replication_factor=self.options.replication_factor,
                config={"retention.ms": str(self.options.retention_ms)},
            )
            for name, count in self._wanted.items()
            if name not in existing
        ]
        if missing:
            for topic, future in admin.create_topics(missing).items():
                await _settle(
                    future, f"create topic {topic}", ignore=KafkaError.TOPIC_ALREADY_EXISTS
                )
        grow = [
            NewPartitions(self.physical(name), count)
            for name, count in self._wanted.items()
            if name in existing and existing[name] < count
        ]
        if grow:
            for topic, future in admin.create_partitions(grow).items():
                await _settle(future, f"grow topic {topic}")
                log.info("kafka_partitions_grown", topic=topic)

    async def _partition_counts(self, names: Sequence[str]) -> dict[str, int]:
        metadata = await asyncio.to_thread(self._admin_client().list_topics, timeout=10)
        counts = {}
        for name in names:
            topic = metadata.topics.get(self.physical(name))
            if topic is not None and topic.error is None:
                counts[name] = len(topic.partitions)
        return counts

    def _admin_client(self) -> AdminClient:
        if self._admin is None:
            raise RuntimeError("KafkaBus.start() was not called")
        return self._admin

    async def close(self) -> None:
        self._running.clear()
        if self._poller is not None:
            await asyncio.to_thread(self._poller.join, 5.0)
        producer = self._producer
        if producer is not None:
            # One thread polls at a time: the poller has stopped, flush polls the rest.
            remaining = await asyncio.to_thread(producer.flush, 10.0)
            if remaining:
                log.warning("kafka_unflushed_on_close", messages=remaining)
        self._producer = None
        self._poller = None

    async def publish(self, messages: Sequence[OutgoingMessage]) -> None:
        await asyncio.gather(*await self.send(messages))

    async def send(self, messages: Sequence[OutgoingMessage]) -> list[asyncio.Future[None]]:
        """Hand ``messages`` to the producer; one future per message, resolved once the
        broker acknowledged it (in order per partition: the producer is idempotent)."""
        producer = self._producer
        if producer is None:
            raise RuntimeError("KafkaBus.start() was not called")
        loop = asyncio.get_running_loop()
        pending = []
        for m in messages:
            done: asyncio.Future[None] = loop.create_future()
            while True:
                try:
                    producer.produce(
                        self.physical(m.topic),
                        key=m.key.encode(),
                        value=m.value,
                        headers=list(m.headers.items()) or None,
                        on_delivery=_resolver(loop, done),
                    )
                    break
                except BufferError:  # the local queue is full: let deliveries drain it
                    await asyncio.sleep(0.01)
            pending.append(done)
        self.published.update(m.topic for m in messages)
        return pending

    def consumer(self, group: str, topics: Sequence[str]) -> KafkaConsumer:
        unknown = [t for t in topics if t not in self._wanted]
        if unknown:
            raise KeyError(f"unknown topics {unknown}")
        return KafkaConsumer(self, group, list(topics))

    async def lag(self) -> dict[tuple[str, str], int]:
        """Unconsumed messages per (group, topic): end offsets minus committed offsets."""
        admin = self._admin_client()
        topics = sorted({t for ts in self._groups.values() for t in ts})
        counts = await self._partition_counts(topics)
        partitions = [
            TopicPartition(self.physical(t), p) for t in topics for p in range(counts.get(t, 0))
        ]
        if not partitions:
            return {}
        latest = OffsetSpec.latest()  # type: ignore[no-untyped-call]
        ends = await _settle_all(
            admin.list_offsets({tp: latest for tp in partitions}), "list offsets"
        )
        end = {(tp.topic, tp.partition): info.offset for tp, info in ends.items()}
        known = await self._known_groups()
        lag: dict[tuple[str, str], int] = {}
        for group, group_topics in self._groups.items():
            mine = [tp for tp in partitions if self.logical(tp.topic) in group_topics]
            committed = await self._committed(group, mine) if self.physical(group) in known else {}
            for tp in mine:
                topic = self.logical(tp.topic)
                high = end.get((tp.topic, tp.partition), 0)
                # No commit yet: the group will start from the beginning (auto.offset.reset).
                position = max(committed.get((tp.topic, tp.partition), 0), 0)
                lag[(group, topic)] = lag.get((group, topic), 0) + max(0, high - position)
        self.last_lag = lag
        return lag

    async def _known_groups(self) -> set[str]:
        """Groups the broker knows. Offsets are asked only of those: a group that never
        joined has no commits, and asking a freshly started broker about one (before its
        offsets topic exists) was followed by a native crash of the asking process."""
        listed = await _settle(self._admin_client().list_consumer_groups(), "list groups")
        return {g.group_id for g in listed.valid}

    async def _committed(
        self, group: str, partitions: list[TopicPartition]
    ) -> dict[tuple[str, int], int]:
        request = [ConsumerGroupTopicPartitions(self.physical(group), partitions)]
        (future,) = self._admin_client().list_consumer_group_offsets(request).values()
        committed = await _settle(future, f"offsets of {group}")
        return {(tp.topic, tp.partition): tp.offset for tp in committed.topic_partitions}

    async def group_members(self, groups: Sequence[str]) -> dict[str, int | None]:
        futures = self._admin_client().describe_consumer_groups([self.physical(g) for g in groups])
        found: dict[str, int | None] = {}
        for group_id, future in futures.items():
            description = await _settle(future, f"describe {group_id}")
            found[self.logical(group_id)] = len(description.members)
        return found

    async def peek(self, topic: str, limit: int) -> list[Message]:
        """The newest ``limit`` messages of ``topic``, newest first."""
        reader = _Reader(self)
        try:
            messages = await asyncio.to_thread(reader.tail, self.physical(topic), limit)
        finally:
            await asyncio.to_thread(reader.close)
        messages.sort(key=lambda m: (m.timestamp, m.offset), reverse=True)
        return messages[:limit]

    async def replay(self, topic: str, batch: int = 500) -> AsyncIterator[list[Message]]:
        """Every message of ``topic`` up to its end when called, in order per partition."""
        reader = _Reader(self)
        try:
            ends = await asyncio.to_thread(reader.assign, self.physical(topic))
            while ends:
                chunk = await asyncio.to_thread(reader.read, batch, ends)
                if chunk:
                    yield chunk
        finally:
            await asyncio.to_thread(reader.close)

    async def prune(self) -> int:
        return 0  # the broker enforces retention.ms itself

    async def ping(self) -> dict[str, Any]:
        started = time.perf_counter()
        try:
            metadata = await asyncio.to_thread(self._admin_client().list_topics, timeout=3)
        except Exception as exc:
            return {"status": "unhealthy", "backend": "kafka", "error": str(exc)[:300]}
        lag = {f"{g}/{t}": n for (g, t), n in sorted(self.last_lag.items())}
        return {
            "status": "healthy" if metadata.brokers else "unhealthy",
            "backend": "kafka",
            "brokers": len(metadata.brokers),
            "latency_ms": round((time.perf_counter() - started) * 1000, 2),
            "consumer_lag": lag,
        }


class KafkaConsumer:
    """One member of a consumer group; its librdkafka calls run on its own thread.

    ``commit`` does not wait for the broker to acknowledge a message's outputs: it queues
    them and moves on, so a partition's messages are handled back to back instead of one
    round trip apart. An offset becomes committable only once the outputs of its message
    and of every message before it in the partition are acknowledged; if a delivery fails,
    the partition is rewound to the first message whose outputs were lost.
    """

    def __init__(self, bus: KafkaBus, group: str, topics: list[str]):
        self._bus = bus
        self.group = group
        self.topics = topics
        self._thread = ThreadPoolExecutor(1, thread_name_prefix=f"kafka:{group}")
        self._consumer: Consumer | None = None
        # Per partition, in order: (message offset, its outputs' deliveries). Loop only.
        self._in_flight: dict[tuple[str, int], deque[_Handled]] = defaultdict(deque)
        # Next offset to commit per partition; written on the loop, read on the thread.
        self._ready: dict[tuple[str, int], int] = {}
        self._lock = threading.Lock()
        self._assigned: set[tuple[str, int]] = set()
        self._last_commit = 0.0

    async def _call(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._thread, fn, *args)

    def _open(self) -> Consumer:
        if self._consumer is None:
            o = self._bus.options
            consumer = Consumer(
                self._bus.client_config(
                    **{
                        "group.id": self._bus.physical(self.group),
                        "enable.auto.commit": False,
                        "auto.offset.reset": "earliest",
                        "partition.assignment.strategy": "cooperative-sticky",
                        "fetch.min.bytes": o.fetch_min_bytes,
                        "fetch.wait.max.ms": o.fetch_max_wait_ms,
                        "session.timeout.ms": o.session_timeout_ms,
                        "heartbeat.interval.ms": max(1000, o.session_timeout_ms // 3),
                        "max.poll.interval.ms": o.max_poll_interval_ms,
                        "topic.metadata.refresh.interval.ms": o.metadata_refresh_ms,
                    }
                )
            )
            consumer.subscribe(
                [self._bus.physical(t) for t in self.topics],
                on_assign=self._on_assign,
                on_revoke=self._on_revoke,
                on_lost=self._on_lost,
            )
            self._consumer = consumer
        return self._consumer

    # Rebalance callbacks run on the consumer's thread, inside consume().
    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        self._assigned.update((tp.topic, tp.partition) for tp in partitions)
        log.info("kafka_assigned", group=self.group, partitions=_names(partitions))

    def _on_revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        # Hand over cleanly: what is done is committed before another member takes over.
        self._commit_ready(consumer, only={(tp.topic, tp.partition) for tp in partitions})
        self._forget(partitions)
        log.info("kafka_revoked", group=self.group, partitions=_names(partitions))

    def _on_lost(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        # Another member may own them already: committing now could move its offsets back.
        self._forget(partitions)
        log.warning("kafka_partitions_lost", group=self.group, partitions=_names(partitions))

    def _forget(self, partitions: list[TopicPartition]) -> None:
        gone = {(tp.topic, tp.partition) for tp in partitions}
        self._assigned -= gone
        with self._lock:
            for slot in gone:
                self._ready.pop(slot, None)

    def _commit_ready(self, consumer: Consumer, only: set[tuple[str, int]] | None = None) -> None:
        with self._lock:
            # Only partitions still ours: another member may have moved on since.
            slots = {
                s: o
                for s, o in self._ready.items()
                if s in self._assigned and (only is None or s in only)
            }
        if not slots:
            return
        offsets = [TopicPartition(t, p, o) for (t, p), o in slots.items()]
        try:
            consumer.commit(offsets=offsets, asynchronous=False)
        except KafkaException as exc:
            # Not lost: the messages are redelivered, and handlers are idempotent.
            log.warning("kafka_commit_failed", group=self.group, error=str(exc))
            return
        with self._lock:
            for slot, offset in slots.items():
                if self._ready.get(slot) == offset:
                    del self._ready[slot]
        self._last_commit = time.monotonic()

    def _poll(self, max_records: int, timeout: float) -> list[KafkaMessage]:
        consumer = self._open()
        if time.monotonic() - self._last_commit >= self._bus.options.commit_interval_s:
            self._commit_ready(consumer)
        return consumer.consume(max_records, timeout)

    async def fetch(self, max_records: int, timeout: float) -> list[Message]:
        await self._settle_deliveries()
        raw = await self._call(self._poll, max_records, timeout)
        batch = []
        for m in raw:
            error = m.error()
            if error is not None:
                if error.fatal():
                    raise KafkaException(error)
                log.warning("kafka_fetch_error", group=self.group, error=str(error))
                continue
            batch.append(_message(self._bus, m))
        return batch

    async def _settle_deliveries(self) -> None:
        """Move acknowledged prefixes to ``_ready``; rewind where a delivery failed."""
        for slot, handled in list(self._in_flight.items()):
            while handled and all(f.done() for f in handled[0].deliveries):
                first = handled.popleft()
                lost = next((f for f in first.deliveries if f.exception() is not None), None)
                if lost is not None:
                    handled.clear()
                    await self.rewind(first.message)
                    raise UnavailableError(
                        f"outputs of a message were lost: {lost.exception()}", dependency="bus"
                    )
                with self._lock:
                    self._ready[slot] = max(self._ready.get(slot, 0), first.message.offset + 1)
            if not handled:
                del self._in_flight[slot]

    async def commit(self, message: Message, outputs: Sequence[OutgoingMessage]) -> None:
        deliveries = await self._bus.send(outputs) if outputs else []
        slot = (self._bus.physical(message.topic), message.partition)
        self._in_flight[slot].append(_Handled(message, deliveries))

    async def rewind(self, message: Message) -> None:
        slot = (self._bus.physical(message.topic), message.partition)
        handled = self._in_flight.get(slot)
        while handled and handled[-1].message.offset >= message.offset:
            handled.pop()  # redelivered, so handled again: not to be committed now
        tp = TopicPartition(slot[0], message.partition, message.offset)

        def seek() -> None:
            try:
                self._open().seek(tp)
            except KafkaException as exc:  # not ours any more: the new owner resumes it
                log.info("kafka_rewind_skipped", group=self.group, error=str(exc))

        await self._call(seek)

    async def close(self) -> None:
        # What was handled gets its offset committed once acknowledged (a bounded wait).
        pending = [f for h in self._in_flight.values() for x in h for f in x.deliveries]
        if pending:
            await asyncio.wait(pending, timeout=10)
        with contextlib.suppress(UnavailableError):
            await self._settle_deliveries()

        def shut() -> None:
            if self._consumer is not None:
                self._commit_ready(self._consumer)
                self._consumer.close()  # leaves the group: a rebalance, not a timeout
                self._consumer = None

        try:
            await self._call(shut)
        finally:
            self._thread.shutdown(wait=False)


@dataclass(frozen=True)
class _Handled:
    message: Message
    deliveries: list[asyncio.Future[None]]


class _Reader:
    """A group-less consumer for reading a topic without moving anyone's offsets."""

    def __init__(self, bus: KafkaBus):
        self._bus = bus
        self._consumer = Consumer(
            bus.client_config(
                **{
                    "group.id": f"ai-pipeline-reader-{uuid.uuid4().hex}",
                    "enable.auto.commit": False,
                    "enable.partition.eof": False,
                }
            )
        )

    def _partitions(self, topic: str) -> list[TopicPartition]:
        metadata = self._consumer.list_topics(topic, timeout=10)
        info = metadata.topics.get(topic)
        if info is None or info.error is not None:
            raise KeyError(f"unknown topic {topic!r}")
        return [TopicPartition(topic, p) for p in sorted(info.partitions)]

    def assign(self, topic: str, last: int | None = None) -> dict[int, int]:
        """Assign every non-empty partition, from its start or its ``last`` messages;
        returns each one's end offset."""
        ends = {}
        assignment = []
        for tp in self._partitions(topic):
            low, high = self._consumer.get_watermark_offsets(tp, timeout=10)
            if high > low:
                ends[tp.partition] = high
                begin = OFFSET_BEGINNING if last is None else max(low, high - last)
                assignment.append(TopicPartition(topic, tp.partition, begin))
        self._consumer.assign(assignment)
        return ends

    def read(self, batch: int, ends: dict[int, int]) -> list[Message]:
        """Up to ``batch`` messages; partitions leave ``ends`` once read to their end."""
        out = []
        for m in self._consumer.consume(batch, 1.0):
            if m.error() is not None:
                continue
            partition, offset = m.partition(), m.offset()
            if partition not in ends or offset is None or offset >= ends[partition]:
                continue
            out.append(_message(self._bus, m))
            if offset + 1 >= ends[partition]:
                del ends[partition]
        return out

    def tail(self, topic: str, limit: int) -> list[Message]:
        ends = self.assign(topic, last=limit)
        out: list[Message] = []
        deadline = time.monotonic() + 10
        while ends and time.monotonic() < deadline:
            out.extend(self.read(max(limit, 100), ends))
        return out

    def close(self) -> None:
        self._consumer.close()


class _LibrdkafkaLog:
    """librdkafka's own log lines, as structured log events instead of raw stderr."""

    def log(self, level: int, message: str, *args: Any) -> None:
        text = message % args if args else message
        if level >= logging.ERROR:
            log.error("librdkafka", detail=text)
        elif level >= logging.WARNING:
            log.warning("librdkafka", detail=text)
        else:
            log.debug("librdkafka", detail=text)


def _message(bus: KafkaBus, m: KafkaMessage) -> Message:
    key = m.key()
    value = m.value()
    _kind, ms = m.timestamp()
    return Message(
        topic=bus.logical(m.topic() or ""),
        partition=m.partition() or 0,
        offset=m.offset() or 0,
        key=key.decode() if isinstance(key, bytes) else str(key or ""),
        value=value if isinstance(value, bytes) else b"",
        headers=_headers(m),
        timestamp=ms / 1000 if ms > 0 else time.time(),
    )


def _headers(m: KafkaMessage) -> dict[str, str]:
    raw = m.headers() or []
    pairs = raw.items() if isinstance(raw, dict) else raw
    return {
        k: v.decode(errors="replace") if isinstance(v, bytes) else v
        for k, v in pairs
        if v is not None
    }


def _resolver(
    loop: asyncio.AbstractEventLoop, done: asyncio.Future[None]
) -> Callable[[KafkaError | None, KafkaMessage], None]:
    def resolve(err: KafkaError | None, _msg: KafkaMessage) -> None:
        loop.call_soon_threadsafe(_settle_delivery, done, err)

    return resolve


def _settle_delivery(done: asyncio.Future[None], err: KafkaError | None) -> None:
    if done.done():
        return
    if err is None:
        done.set_result(None)
    else:
        done.set_exception(
            UnavailableError(f"kafka delivery failed: {err.str()}", dependency="bus")
        )


async def _settle(future: Future[Any], what: str, ignore: int | None = None) -> Any:
    try:
        return await asyncio.wrap_future(future)
    except KafkaException as exc:
        error = exc.args[0] if exc.args else None
        if ignore is not None and isinstance(error, KafkaError) and error.code() == ignore:
            return None
        raise UnavailableError(f"kafka: {what} failed: {exc}", dependency="bus") from exc


async def _settle_all(futures: Mapping[Any, Future[Any]], what: str) -> dict[Any, Any]:
    return {key: await _settle(future, what) for key, future in futures.items()}


def _names(partitions: list[TopicPartition]) -> list[str]:
    return [f"{tp.topic}[{tp.partition}]" for tp in partitions]
