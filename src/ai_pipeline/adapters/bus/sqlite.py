"""The embedded bus: a partitioned message log with consumer-group offsets in SQLite."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import time
import zlib
from collections import Counter
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any

from ai_pipeline.adapters.sqlite_db import SqliteDatabase
from ai_pipeline.ports import Message, OutgoingMessage

SCHEMA = """
CREATE TABLE IF NOT EXISTS bus_topics (
    name TEXT PRIMARY KEY,
    partitions INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS bus_messages (
    topic TEXT NOT NULL,
    partition INTEGER NOT NULL,
    offset INTEGER NOT NULL,
    key TEXT NOT NULL,
    value BLOB NOT NULL,
    headers TEXT NOT NULL,
    ts REAL NOT NULL,
    PRIMARY KEY (topic, partition, offset)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS bus_offsets (
    grp TEXT NOT NULL,
    topic TEXT NOT NULL,
    partition INTEGER NOT NULL,
    next_offset INTEGER NOT NULL,
    PRIMARY KEY (grp, topic, partition)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS bus_groups (
    grp TEXT NOT NULL,
    topic TEXT NOT NULL,
    PRIMARY KEY (grp, topic)
) WITHOUT ROWID;
"""

INSERT_SQL = "INSERT INTO bus_messages VALUES (?, ?, ?, ?, ?, ?, ?)"
FETCH_SQL = (
    "SELECT offset, key, value, headers, ts FROM bus_messages"
    " WHERE topic = ? AND partition = ? AND offset >= ? ORDER BY offset LIMIT ?"
)


def partition_for(key: str, partitions: int) -> int:
    return zlib.crc32(key.encode()) % partitions


class SqliteBus:
    def __init__(
        self,
        db: SqliteDatabase,
        topics: Mapping[str, int],
        retention_seconds: float = 7 * 24 * 3600,
    ):
        self.db = db
        self._wanted_topics = dict(topics)
        self._partitions: dict[str, int] = {}
        self._waiters: dict[str, asyncio.Event] = {}
        self.retention_seconds = retention_seconds
        self.published: Counter[str] = Counter()
        self.offsets = OffsetCounter()
        db.add_schema(SCHEMA)

    async def start(self) -> None:
        await self.db.start()
        await self.db.write(self._ensure_topics)
        self._partitions = {
            row["name"]: row["partitions"] for row in self.db.read("SELECT * FROM bus_topics")
        }

    def _ensure_topics(self, conn: sqlite3.Connection) -> None:
        # Partition counts only grow: shrinking would move keys and break per-key order.
        for name, partitions in self._wanted_topics.items():
            conn.execute(
                "INSERT INTO bus_topics (name, partitions) VALUES (?, ?)"
                " ON CONFLICT(name)"
                " DO UPDATE SET partitions = max(partitions, excluded.partitions)",
                (name, partitions),
            )

    async def close(self) -> None:
        await self.db.close()

    def partitions(self, topic: str) -> int:
        try:
            return self._partitions[topic]
        except KeyError:
            raise KeyError(f"unknown topic {topic!r}") from None

    async def publish(self, messages: Sequence[OutgoingMessage]) -> None:
        rows = self._rows(messages)
        await self.db.write(lambda conn: self.offsets.append(conn, rows))
        self.committed(messages)

    def stage(self, conn: sqlite3.Connection, messages: Sequence[OutgoingMessage]) -> None:
        """Append inside a transaction someone else commits; call ``committed`` after."""
        self.offsets.append(conn, self._rows(messages))

    def committed(self, messages: Sequence[OutgoingMessage]) -> None:
        self._notify({m.topic for m in messages})

    def _rows(self, messages: Sequence[OutgoingMessage]) -> list[tuple[Any, ...]]:
        now = time.time()
        self.published.update(m.topic for m in messages)
        return [
            (
                m.topic,
                partition_for(m.key, self.partitions(m.topic)),
                m.key,
                m.value,
                json.dumps(m.headers) if m.headers else "{}",
                now,
            )
            for m in messages
        ]

    def consumer(self, group: str, topics: Sequence[str]) -> SqliteConsumer:
        for topic in topics:
            self.partitions(topic)
        return SqliteConsumer(self, group, list(topics))

    def _notify(self, topics: set[str]) -> None:
        for topic in topics:
            waiter = self._waiters.pop(topic, None)
            if waiter is not None:
                waiter.set()

    def waiter(self, topic: str) -> asyncio.Event:
        return self._waiters.setdefault(topic, asyncio.Event())

    async def lag(self) -> dict[tuple[str, str], int]:
        # One indexed lookup per partition: a GROUP BY over the log would scan all of it,
        # on the event loop, at every scrape.
        committed = {
            (r["grp"], r["topic"], r["partition"]): int(r["next_offset"])
            for r in self.db.read("SELECT grp, topic, partition, next_offset FROM bus_offsets")
        }
        lag: dict[tuple[str, str], int] = {}
        for group, topic in self._groups():
            behind = 0
            for partition in range(self._partitions.get(topic, 0)):
                start, end = self._bounds(topic, partition)
                position = committed.get((group, topic, partition), start)
                behind += max(0, end - max(position, start))
            lag[(group, topic)] = behind
        return lag

    def _bounds(self, topic: str, partition: int) -> tuple[int, int]:
        """First offset still in the log, and the next offset to be written."""
        first = self.db.read(
            "SELECT offset FROM bus_messages WHERE topic = ? AND partition = ?"
            " ORDER BY offset LIMIT 1",
            (topic, partition),
        )
        last = self.db.read(
            "SELECT offset FROM bus_messages WHERE topic = ? AND partition = ?"
            " ORDER BY offset DESC LIMIT 1",
            (topic, partition),
        )
        if not last:
            return 0, 0
        return int(first[0][0]), int(last[0][0]) + 1

    def _read(self, topic: str, partition: int, position: int, limit: int) -> list[Message]:
        rows = self.db.read(FETCH_SQL, (topic, partition, position, limit))
        return [
            Message(
                topic=topic,
                partition=partition,
                offset=row["offset"],
                key=row["key"],
                value=row["value"],
                headers=json.loads(row["headers"]),
                timestamp=row["ts"],
            )
            for row in rows
        ]

    def _groups(self) -> list[tuple[str, str]]:
        return [(r["grp"], r["topic"]) for r in self.db.read("SELECT grp, topic FROM bus_groups")]

    async def group_members(self, groups: Sequence[str]) -> dict[str, int | None]:
        return dict.fromkeys(groups)  # the embedded log keeps no membership

    async def peek(self, topic: str, limit: int) -> list[Message]:
        rows = self.db.read(
            "SELECT partition, offset, key, value, headers, ts FROM bus_messages"
            " WHERE topic = ? ORDER BY ts DESC, partition, offset DESC LIMIT ?",
            (topic, limit),
        )
        return [
            Message(
                topic,
                r["partition"],
                r["offset"],
                r["key"],
                r["value"],
                json.loads(r["headers"]),
                r["ts"],
            )
            for r in rows
        ]

    async def replay(self, topic: str, batch: int = 500) -> AsyncIterator[list[Message]]:
        ends = {p: self._bounds(topic, p)[1] for p in range(self.partitions(topic))}
        for partition, end in ends.items():
            position = 0
            while position < end:
                chunk = self._read(topic, partition, position, min(batch, end - position))
                if not chunk:
                    break
                position = chunk[-1].offset + 1
                yield chunk

    async def prune(self, now: float | None = None) -> int:
        """Drop messages past retention that every group has consumed."""
        cutoff = (now or time.time()) - self.retention_seconds
        return await self.db.write(lambda conn: _prune(conn, cutoff))

    async def ping(self) -> dict[str, Any]:
        return self.db.ping()


class OffsetCounter:
    """Next offset per partition, remembered so an append costs one INSERT, not two.

    A stale value (another process appended, a transaction rolled back) is harmless: the
    primary key refuses a taken offset, and the counter then re-reads the partition's end.
    """

    def __init__(self) -> None:
        self._next: dict[tuple[str, int], int] = {}

    def append(self, conn: sqlite3.Connection, rows: list[tuple[Any, ...]]) -> None:
        for topic, partition, key, value, headers, ts in rows:
            slot = (topic, partition)
            offset = self._next.get(slot)
            if offset is None:
                offset = self._end(conn, topic, partition)
            try:
                conn.execute(INSERT_SQL, (topic, partition, offset, key, value, headers, ts))
            except sqlite3.IntegrityError:
                offset = self._end(conn, topic, partition)
                conn.execute(INSERT_SQL, (topic, partition, offset, key, value, headers, ts))
            self._next[slot] = offset + 1

    @staticmethod
    def _end(conn: sqlite3.Connection, topic: str, partition: int) -> int:
        (end,) = conn.execute(
            "SELECT coalesce(max(offset) + 1, 0) FROM bus_messages"
            " WHERE topic = ? AND partition = ?",
            (topic, partition),
        ).fetchone()
        return int(end)


def _prune(conn: sqlite3.Connection, cutoff: float) -> int:
    cursor = conn.execute(
        "DELETE FROM bus_messages WHERE ts < ? AND NOT EXISTS ("
        "  SELECT 1 FROM bus_groups g LEFT JOIN bus_offsets o"
        "    ON o.grp = g.grp AND o.topic = g.topic AND o.partition = bus_messages.partition"
        "  WHERE g.topic = bus_messages.topic"
        "    AND coalesce(o.next_offset, 0) <= bus_messages.offset)",
        (cutoff,),
    )
    return cursor.rowcount


class SqliteConsumer:
    def __init__(self, bus: SqliteBus, group: str, topics: list[str]):
        self._bus = bus
        self.group = group
        self.topics = topics
        self._positions: dict[tuple[str, int], int] = {}
        self._registered = False

    async def _register(self) -> None:
        group, topics = self.group, self.topics
        await self._bus.db.write(
            lambda conn: conn.executemany(
                "INSERT OR IGNORE INTO bus_groups (grp, topic) VALUES (?, ?)",
                [(group, t) for t in topics],
            )
        )
        for row in self._bus.db.read(
            "SELECT topic, partition, next_offset FROM bus_offsets WHERE grp = ?", (group,)
        ):
            self._positions[(row["topic"], row["partition"])] = row["next_offset"]
        self._registered = True

    async def fetch(self, max_records: int, timeout: float) -> list[Message]:
        if not self._registered:
            await self._register()
        deadline = time.monotonic() + timeout
        while True:
            waiters = [self._bus.waiter(t) for t in self.topics]
            batch = self._read(max_records)
            remaining = deadline - time.monotonic()
            if batch or remaining <= 0:
                return batch
            await _wait_any(waiters, remaining)

    def _read(self, max_records: int) -> list[Message]:
        slots = [(t, p) for t in self.topics for p in range(self._bus.partitions(t))]
        # A fair share per partition, so one busy partition cannot starve the others.
        share = max(1, max_records // len(slots))
        batch: list[Message] = []
        for topic, partition in slots:
            batch.extend(self._read_partition(topic, partition, share))
        return batch

    def _read_partition(self, topic: str, partition: int, limit: int) -> list[Message]:
        position = self._positions.get((topic, partition), 0)
        messages = self._bus._read(topic, partition, position, limit)
        if messages:
            self._positions[(topic, partition)] = messages[-1].offset + 1
        return messages

    async def commit(self, message: Message, outputs: Sequence[OutgoingMessage]) -> None:
        rows = self._bus._rows(outputs)
        group = self.group

        offsets = self._bus.offsets

        def op(conn: sqlite3.Connection) -> None:
            offsets.append(conn, rows)
            conn.execute(
                "INSERT INTO bus_offsets (grp, topic, partition, next_offset) VALUES (?, ?, ?, ?)"
                " ON CONFLICT(grp, topic, partition)"
                " DO UPDATE SET next_offset = max(next_offset, excluded.next_offset)",
                (group, message.topic, message.partition, message.offset + 1),
            )

        await self._bus.db.write(op)
        self._bus.committed(outputs)

    async def rewind(self, message: Message) -> None:
        self._positions[(message.topic, message.partition)] = message.offset

    async def close(self) -> None:
        self._positions.clear()
        self._registered = False


async def _wait_any(events: list[asyncio.Event], timeout: float) -> None:
    tasks = [asyncio.ensure_future(e.wait()) for e in events]
    try:
        await asyncio.wait(tasks, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
