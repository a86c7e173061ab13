"""aiokafka against confluent-kafka, the way the pipeline uses a client.

Both produce with the settings the bus needs (idempotent, ``acks=all``, key = request id),
awaiting each batch like an agent awaits its outputs, then consume the lot in one group,
committing after each batch. confluent-kafka is measured through the project's own
``KafkaBus``, so the figure includes the thread hand-offs that adapter adds.
"""

from __future__ import annotations

import asyncio
import statistics
import time
import uuid
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from ai_pipeline.adapters.bus.kafka import KafkaBus, KafkaOptions
from ai_pipeline.ports import OutgoingMessage

BATCH = 100
VALUE = b"x" * 1024
LINGER_MS = 5  # the same for both clients: an awaited batch waits this long to be sent


async def _confluent(bootstrap: str, count: int) -> dict[str, float]:
    prefix = f"cc{uuid.uuid4().hex[:6]}."
    bus = KafkaBus(
        f"kafka://{bootstrap}",
        {"t": 6},
        {"g": ["t"]},
        KafkaOptions(topic_prefix=prefix, linger_ms=LINGER_MS),
    )
    await bus.start()
    await bus.publish([OutgoingMessage("t", "warm-up", VALUE)])  # producer id, metadata
    began = time.perf_counter()
    for start in range(0, count, BATCH):
        await bus.publish(
            [OutgoingMessage("t", f"k{i}", VALUE) for i in range(start, start + BATCH)]
        )
    produced = time.perf_counter() - began
    consumer = bus.consumer("g", ["t"])
    began, seen = 0.0, 0
    while seen <= count:
        batch = await consumer.fetch(BATCH * 5, 1.0)
        if batch and not began:
            began = time.perf_counter()  # joining the group is not consuming
        for message in batch:
            await consumer.commit(message, [])
        seen += len(batch)
    consumed = time.perf_counter() - began
    await consumer.close()
    await bus.close()
    return {"produce_per_s": count / produced, "consume_per_s": count / consumed}


async def _aiokafka(bootstrap: str, count: int) -> dict[str, float]:
    topic = f"ak{uuid.uuid4().hex[:6]}.t"
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    await admin.create_topics([NewTopic(topic, num_partitions=6, replication_factor=1)])
    await admin.close()
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, enable_idempotence=True, acks="all", linger_ms=LINGER_MS
    )
    await producer.start()
    await (await producer.send(topic, VALUE, key=b"warm-up"))
    began = time.perf_counter()
    for start in range(0, count, BATCH):
        futures = [
            await producer.send(topic, VALUE, key=f"k{i}".encode())
            for i in range(start, start + BATCH)
        ]
        await asyncio.gather(*futures)
    produced = time.perf_counter() - began
    await producer.stop()
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=f"g-{topic}",
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    await consumer.start()
    began, seen = 0.0, 0
    while seen <= count:
        batches = await consumer.getmany(timeout_ms=1000, max_records=BATCH * 5)
        if batches and not began:
            began = time.perf_counter()
        for messages in batches.values():
            seen += len(messages)
        if batches:
            await consumer.commit()
    consumed = time.perf_counter() - began
    await consumer.stop()
    return {"produce_per_s": count / produced, "consume_per_s": count / consumed}


def run(bootstrap: str, count: int = 20_000, rounds: int = 3) -> dict[str, Any]:
    """Alternating rounds (the box is noisy); each client's median round."""
    print(f"kafka clients: {count} messages, {rounds} alternating rounds …", flush=True)
    result: dict[str, Any] = {"messages": count, "value_bytes": len(VALUE), "rounds": rounds}
    clients = (("confluent_kafka", _confluent), ("aiokafka", _aiokafka))
    seen: dict[str, list[dict[str, float]]] = {name: [] for name, _ in clients}
    for _round in range(rounds):
        for name, measure in clients:
            try:
                seen[name].append(asyncio.run(measure(bootstrap, count)))
            except Exception as exc:  # a client that cannot talk to this broker is a finding
                result[name] = {"error": f"{type(exc).__name__}: {exc}"[:300]}
    for name, runs in seen.items():
        if runs:
            result[name] = {key: statistics.median(r[key] for r in runs) for key in runs[0]}
        print(f"  {name}: {result[name]}", flush=True)
    return result
