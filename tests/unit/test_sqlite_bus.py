"""Semantics of the embedded bus: order per key, offsets, redelivery, groups, lag."""

from __future__ import annotations

from pathlib import Path

import pytest

from ai_pipeline.adapters.bus.sqlite import SqliteBus, partition_for
from ai_pipeline.adapters.sqlite_db import SqliteDatabase
from ai_pipeline.ports import OutgoingMessage

pytestmark = pytest.mark.anyio


def new_bus(path: Path, partitions: int = 3) -> SqliteBus:
    return SqliteBus(SqliteDatabase(path), {"t": partitions, "out": 1, "t.dlq": 1})


def msg(key: str, value: str, topic: str = "t") -> OutgoingMessage:
    return OutgoingMessage(topic, key, value.encode())


async def drain(bus: SqliteBus, group: str, topic: str = "t") -> list[str]:
    consumer = bus.consumer(group, [topic])
    got = []
    while batch := await consumer.fetch(100, 0.05):
        for m in batch:
            got.append(m.value.decode())
            await consumer.commit(m, [])
    return got


async def test_messages_of_one_key_arrive_in_publish_order(tmp_path: Path) -> None:
    bus = new_bus(tmp_path / "b.db")
    await bus.start()
    await bus.publish([msg(f"k{i % 4}", f"{i % 4}:{i}") for i in range(40)])
    got = await drain(bus, "g")
    assert len(got) == 40
    for key in "0123":
        seq = [int(v.split(":")[1]) for v in got if v.startswith(f"{key}:")]
        assert seq == sorted(seq)
    await bus.close()


async def test_same_key_always_lands_on_the_same_partition() -> None:
    assert len({partition_for("request-42", 6) for _ in range(10)}) == 1
    assert len({partition_for(f"r{i}", 6) for i in range(200)}) == 6


async def test_uncommitted_messages_are_redelivered_after_restart(tmp_path: Path) -> None:
    path = tmp_path / "b.db"
    bus = new_bus(path)
    await bus.start()
    await bus.publish([msg("a", "1"), msg("a", "2"), msg("a", "3")])
    consumer = bus.consumer("g", ["t"])
    batch = await consumer.fetch(10, 0.1)
    await consumer.commit(batch[0], [])  # "1" done, "2" and "3" handled but not committed
    await bus.close()

    reopened = new_bus(path)
    await reopened.start()
    assert await drain(reopened, "g") == ["2", "3"]
    await reopened.close()


async def test_commit_publishes_outputs_atomically_with_the_offset(tmp_path: Path) -> None:
    bus = new_bus(tmp_path / "b.db")
    await bus.start()
    await bus.publish([msg("a", "in")])
    consumer = bus.consumer("g", ["t"])
    (m,) = await consumer.fetch(10, 0.1)
    await consumer.commit(m, [msg("a", "derived", topic="out")])
    assert await drain(bus, "g2", "out") == ["derived"]
    assert await consumer.fetch(10, 0.05) == []
    await bus.close()


async def test_groups_consume_independently(tmp_path: Path) -> None:
    bus = new_bus(tmp_path / "b.db")
    await bus.start()
    await bus.publish([msg("a", "x"), msg("b", "y")])
    assert sorted(await drain(bus, "g1")) == ["x", "y"]
    assert sorted(await drain(bus, "g2")) == ["x", "y"]
    assert await drain(bus, "g1") == []
    await bus.close()


async def test_rewind_delivers_a_message_again(tmp_path: Path) -> None:
    bus = new_bus(tmp_path / "b.db")
    await bus.start()
    await bus.publish([msg("a", "1"), msg("a", "2")])
    consumer = bus.consumer("g", ["t"])
    first = await consumer.fetch(10, 0.1)
    await consumer.rewind(first[0])
    again = await consumer.fetch(10, 0.1)
    assert [m.value for m in again] == [b"1", b"2"]
    await bus.close()


async def test_lag_counts_what_each_group_has_not_committed(tmp_path: Path) -> None:
    bus = new_bus(tmp_path / "b.db")
    await bus.start()
    consumer = bus.consumer("g", ["t"])
    assert await consumer.fetch(10, 0.01) == []  # registers the group
    await bus.publish([msg(f"k{i}", str(i)) for i in range(7)])
    assert (await bus.lag())[("g", "t")] == 7
    batch = await consumer.fetch(3, 0.1)
    for m in batch:
        await consumer.commit(m, [])
    assert (await bus.lag())[("g", "t")] == 7 - len(batch)
    await bus.close()


async def test_partitions_can_grow_but_never_shrink(tmp_path: Path) -> None:
    path = tmp_path / "b.db"
    bus = new_bus(path, partitions=2)
    await bus.start()
    await bus.close()
    grown = new_bus(path, partitions=5)
    await grown.start()
    assert grown.partitions("t") == 5
    await grown.close()
    shrunk = new_bus(path, partitions=1)
    await shrunk.start()
    assert shrunk.partitions("t") == 5
    await shrunk.close()


async def test_fetch_waits_for_a_publish_instead_of_sleeping(tmp_path: Path) -> None:
    import asyncio

    bus = new_bus(tmp_path / "b.db")
    await bus.start()
    consumer = bus.consumer("g", ["t"])
    await consumer.fetch(1, 0.01)
    waiting = asyncio.create_task(consumer.fetch(10, 30.0))
    await asyncio.sleep(0.05)
    await bus.publish([msg("a", "wake")])
    batch = await asyncio.wait_for(waiting, 10.0)
    assert [m.value for m in batch] == [b"wake"]
    await bus.close()


async def test_prune_drops_only_consumed_messages_past_retention(tmp_path: Path) -> None:
    import time

    bus = new_bus(tmp_path / "b.db")
    await bus.start()
    consumer = bus.consumer("g", ["t"])
    await consumer.fetch(1, 0.01)
    await bus.publish([msg("a", "1"), msg("a", "2")])
    (first, _second) = await consumer.fetch(10, 0.1)
    await consumer.commit(first, [])
    assert await bus.prune(now=time.time() + bus.retention_seconds + 1) == 1
    await consumer.rewind(first)
    assert [m.value for m in await consumer.fetch(10, 0.1)] == [b"2"]
    await bus.close()


async def test_a_failing_write_does_not_undo_the_others_in_its_group_commit(
    tmp_path: Path,
) -> None:
    import asyncio
    import sqlite3

    db = SqliteDatabase(tmp_path / "g.db")
    db.add_schema("CREATE TABLE IF NOT EXISTS t (k TEXT PRIMARY KEY);")
    await db.start()

    def insert(key: str) -> object:
        return lambda conn: conn.execute("INSERT INTO t VALUES (?)", (key,))

    outcomes = await asyncio.gather(
        db.write(insert("a")),
        db.write(insert("a")),
        db.write(insert("b")),
        return_exceptions=True,
    )
    assert isinstance(outcomes[1], sqlite3.IntegrityError)
    assert [r[0] for r in db.read("SELECT k FROM t ORDER BY k")] == ["a", "b"]
    await db.close()


async def test_full_synchronous_mode_commits_on_a_thread_and_is_durable(tmp_path: Path) -> None:
    import asyncio

    path = tmp_path / "full.db"
    bus = SqliteBus(SqliteDatabase(path, synchronous="FULL"), {"t": 2})
    await bus.start()
    await asyncio.gather(*(bus.publish([msg(f"k{i}", str(i))]) for i in range(50)))
    assert bus.db.commits < 50  # writes arriving during a commit joined the next one
    await bus.close()
    reopened = new_bus(path)
    await reopened.start()
    assert len(await drain(reopened, "g")) == 50
    await reopened.close()


async def wal_rewound(db: SqliteDatabase, timeout: float = 10.0) -> bool:
    import asyncio

    async with asyncio.timeout(timeout):
        while db.wal_restarts == 0:
            await asyncio.sleep(0.02)
    return True


async def test_the_wal_is_rewound_when_quiet_and_not_while_busy(tmp_path: Path) -> None:
    import asyncio

    busy = True
    db = SqliteDatabase(
        tmp_path / "w.db", quiet=lambda: not busy, checkpoint_every=0.02, rewind_frames=(20, 10**9)
    )
    bus = SqliteBus(db, {"t": 1})
    await bus.start()
    for i in range(50):
        await bus.publish([msg("k", "x" * 2000 + str(i))])
    await asyncio.sleep(0.2)
    assert db.wal_restarts == 0  # busy: writers are never paused for it
    busy = False
    assert await wal_rewound(db)
    assert (tmp_path / "w.db-wal").stat().st_size == 0  # TRUNCATE gave the disk back
    assert len(await drain(bus, "g")) == 50
    await bus.close()


async def test_a_huge_wal_is_rewound_even_under_load(tmp_path: Path) -> None:
    db = SqliteDatabase(
        tmp_path / "w.db", quiet=lambda: False, checkpoint_every=0.02, rewind_frames=(10, 40)
    )
    bus = SqliteBus(db, {"t": 1})
    await bus.start()
    for i in range(50):
        await bus.publish([msg("k", "x" * 2000 + str(i))])
    assert await wal_rewound(db)
    await bus.close()
