"""What a report costs the box: CPU time per process, peak memory, Redis commands and Kafka
messages, read from /proc, Redis' INFO and the topics' end offsets around one phase of load.

The bench process itself holds two of the parts: its main thread is the load generator
(sending, and polling the API until the phase ends); every other thread of it serves the
GitHub-shaped tracker. They are told apart by thread, from /proc/self/task.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

TICKS = os.sysconf("SC_CLK_TCK")
LOAD_GENERATOR = "load generator"
FAKE_TRACKER = "fake tracker"


def _cpu_ticks(stat: Path) -> int:
    """utime + stime of a /proc/.../stat file (the command may hold spaces: split after ')')."""
    fields = stat.read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])


def _children(pid: int) -> Iterator[int]:
    for task in Path(f"/proc/{pid}/task").iterdir():
        children = (task / "children").read_text().split()
        yield from (int(child) for child in children)


def tree_cpu_seconds(pid: int) -> float:
    """CPU seconds of a process and its descendants (a launcher's child does the work)."""
    try:
        ticks = _cpu_ticks(Path(f"/proc/{pid}/stat"))
        return ticks / TICKS + sum(tree_cpu_seconds(child) for child in _children(pid))
    except (FileNotFoundError, ProcessLookupError):
        return 0.0


def tree_peak_rss_mb(pid: int) -> float:
    """The largest peak resident set (VmHWM) in a process tree, in MB."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
        peak = next(
            (int(line.split()[1]) for line in status.splitlines() if line.startswith("VmHWM:")),
            0,
        )
        return max([peak / 1024, *(tree_peak_rss_mb(child) for child in _children(pid))])
    except (FileNotFoundError, ProcessLookupError):
        return 0.0


def _bench_threads() -> dict[str, float]:
    """This process's CPU seconds: the main thread (load generator) and the rest (tracker)."""
    main = threading.main_thread().native_id
    split = {LOAD_GENERATOR: 0.0, FAKE_TRACKER: 0.0}
    for task in Path("/proc/self/task").iterdir():
        try:
            seconds = _cpu_ticks(task / "stat") / TICKS
        except FileNotFoundError:  # a thread that ended meanwhile
            continue
        split[LOAD_GENERATOR if int(task.name) == main else FAKE_TRACKER] += seconds
    return split


@dataclass
class Snapshot:
    cpu_seconds: dict[str, float]
    redis_commands: int
    kafka_messages: int


@dataclass
class CostMeter:
    """Reads the cost counters of named processes, Redis and Kafka topics with a prefix."""

    pids: Callable[[], dict[str, int]]  # name → pid, read anew (a restarted agent)
    redis_url: str
    kafka_bootstrap: str
    topic_prefix: str

    def snapshot(self) -> Snapshot:
        cpu = {name: tree_cpu_seconds(pid) for name, pid in self.pids().items()}
        cpu.update(_bench_threads())
        return Snapshot(cpu, self._redis_commands(), self._kafka_messages())

    def _redis_commands(self) -> int:
        import redis

        client = redis.Redis.from_url(self.redis_url)
        try:
            return int(client.info("stats")["total_commands_processed"])
        finally:
            client.close()

    def _kafka_messages(self) -> int:
        """The sum of every prefixed topic's end offsets: the messages written to them."""
        from confluent_kafka import Consumer, TopicPartition

        consumer = Consumer({"bootstrap.servers": self.kafka_bootstrap, "group.id": "bench-cost"})
        try:
            topics = consumer.list_topics(timeout=10).topics
            return sum(
                consumer.get_watermark_offsets(TopicPartition(name, p), timeout=10)[1]
                for name, topic in topics.items()
                if name.startswith(self.topic_prefix)
                for p in topic.partitions
            )
        finally:
            consumer.close()

    def peak_rss_mb(self) -> dict[str, float]:
        return {name: tree_peak_rss_mb(pid) for name, pid in self.pids().items()}


def per_report(before: Snapshot, after: Snapshot, reports: int, meter: CostMeter) -> dict[str, Any]:
    """The cost of a phase divided by the reports it completed."""
    n = max(reports, 1)
    cpu_ms = {
        name: (after.cpu_seconds.get(name, 0.0) - before.cpu_seconds.get(name, 0.0)) * 1000 / n
        for name in after.cpu_seconds
    }
    service = sum(v for k, v in cpu_ms.items() if k not in (LOAD_GENERATOR, FAKE_TRACKER))
    return {
        "cpu_ms_per_report": cpu_ms,
        "cpu_ms_per_report_service": service,
        "cpu_ms_per_report_all": sum(cpu_ms.values()),
        "redis_commands_per_report": (after.redis_commands - before.redis_commands) / n,
        "kafka_messages_per_report": (after.kafka_messages - before.kafka_messages) / n,
        "peak_rss_mb": meter.peak_rss_mb(),
    }
