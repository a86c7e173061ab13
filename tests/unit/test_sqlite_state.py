"""The embedded state store: idempotent creation, atomic folding, listing, the ledger."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from ai_pipeline.adapters.bus.sqlite import SqliteBus
from ai_pipeline.adapters.sqlite_db import SqliteDatabase
from ai_pipeline.adapters.state.sqlite import SqliteStateStore
from ai_pipeline.domain.events import Step, StepChanged, StepStatus, utcnow
from ai_pipeline.domain.models import FiledIssue
from ai_pipeline.domain.request_state import ACTIVE, RequestStatus, new_request
from ai_pipeline.domain.submissions import IdConflict
from ai_pipeline.ports import FilingRecord, OutgoingMessage
from tests.factories import report

pytestmark = pytest.mark.anyio


async def new_store(path: Path) -> SqliteStateStore:
    db = SqliteDatabase(path)
    bus = SqliteBus(db, {"t": 2})
    store = SqliteStateStore(db, bus, same_file_bus=bus)
    await bus.start()
    await store.start()
    return store


async def test_the_outbox_is_published_with_a_new_request_only(tmp_path: Path) -> None:
    store = await new_store(tmp_path / "s.db")
    r = report()
    outbox = [OutgoingMessage("t", "r1", b"first")]
    await store.create_request(new_request("r1", r.id, utcnow()), r, None, outbox=outbox)
    await store.create_request(new_request("r2", r.id, utcnow()), r, None, outbox=outbox)
    consumer = store._bus.consumer("g", ["t"])
    assert [m.value for m in await consumer.fetch(10, 0.1)] == [b"first"]
    await store.close()


async def test_a_store_on_another_file_publishes_after_the_insert(tmp_path: Path) -> None:
    bus = SqliteBus(SqliteDatabase(tmp_path / "bus.db"), {"t": 1})
    store = SqliteStateStore(SqliteDatabase(tmp_path / "state.db"), bus)
    await bus.start()
    await store.start()
    r = report()
    outbox = [OutgoingMessage("t", "r1", b"first")]
    await store.create_request(new_request("r1", r.id, utcnow()), r, None, outbox=outbox)
    assert [m.value for m in await bus.consumer("g", ["t"]).fetch(10, 0.1)] == [b"first"]
    await store.close()
    await bus.close()


async def test_a_bug_report_id_creates_one_request_only(tmp_path: Path) -> None:
    store = await new_store(tmp_path / "s.db")
    r = report()
    first, created = await store.create_request(new_request("r1", r.id, utcnow()), r, None)
    again, created_again = await store.create_request(new_request("r2", r.id, utcnow()), r, None)
    assert created and not created_again
    assert again.request_id == first.request_id == "r1"
    await store.close()


async def test_an_idempotency_key_returns_the_first_request_and_refuses_another_report(
    tmp_path: Path,
) -> None:
    store = await new_store(tmp_path / "s.db")
    a, b = report(), report()
    await store.create_request(new_request("r1", a.id, utcnow()), a, "key-1")
    state, created = await store.create_request(new_request("r2", a.id, utcnow()), a, "key-1")
    assert not created and state.request_id == "r1"
    with pytest.raises(IdConflict, match="key-1"):
        await store.create_request(new_request("r3", b.id, utcnow()), b, "key-1")
    assert await store.get("r3") is None
    await store.close()


async def test_concurrent_duplicates_in_one_group_commit_create_one_request(
    tmp_path: Path,
) -> None:
    import asyncio

    store = await new_store(tmp_path / "s.db")
    r = report()
    results = await asyncio.gather(
        *(store.create_request(new_request(f"r{i}", r.id, utcnow()), r, None) for i in range(20))
    )
    assert sum(created for _, created in results) == 1
    assert len({state.request_id for state, _ in results}) == 1
    await store.close()


async def test_stale_and_replayed_events_never_move_a_request_backwards(tmp_path: Path) -> None:
    store = await new_store(tmp_path / "s.db")
    r = report()
    await store.create_request(new_request("r1", r.id, utcnow()), r, None)
    done = StepChanged(request_id="r1", step=Step.TICKET_CREATION, status=StepStatus.COMPLETED)
    assert (await store.apply(done)) is not None
    late = StepChanged(request_id="r1", step=Step.TRIAGE, status=StepStatus.STARTED)
    assert await store.apply(late) is None
    assert await store.apply(done) is None
    state = await store.get("r1")
    assert state is not None and state.current_step is Step.TICKET_CREATION
    await store.close()


async def test_listing_filters_by_status_and_paginates(tmp_path: Path) -> None:
    store = await new_store(tmp_path / "s.db")
    for i in range(5):
        r = report()
        await store.create_request(new_request(f"r{i}", r.id, utcnow()), r, None)
    await store.apply(
        StepChanged(request_id="r0", step=Step.TRIAGE, status=StepStatus.FAILED, error="boom")
    )
    active = await store.list_requests(list(ACTIVE), limit=3, offset=0)
    assert active.total == 4 and len(active.requests) == 3
    rest = await store.list_requests(list(ACTIVE), limit=3, offset=3)
    assert len(rest.requests) == 1
    failed = await store.list_requests([RequestStatus.FAILED], limit=10, offset=0)
    assert [s.request_id for s in failed.requests] == ["r0"]
    assert failed.requests[0].error_message == "boom"
    await store.close()


async def test_stuck_lists_only_active_requests_without_recent_progress(tmp_path: Path) -> None:
    store = await new_store(tmp_path / "s.db")
    old, fresh = report(), report()
    await store.create_request(
        new_request("old", old.id, utcnow() - timedelta(minutes=10)), old, None
    )
    await store.create_request(new_request("fresh", fresh.id, utcnow()), fresh, None)
    stuck = await store.stuck(utcnow() - timedelta(minutes=5), limit=10)
    assert [s.request_id for s in stuck] == ["old"]
    await store.close()


async def test_the_filing_ledger_remembers_pending_and_filed(tmp_path: Path) -> None:
    store = await new_store(tmp_path / "s.db")
    assert await store.get_filing("r1") is None
    await store.put_filing(FilingRecord("r1", "pending", None))
    record = await store.get_filing("r1")
    assert record is not None and record.state == "pending"
    issue = FiledIssue(number=7, url="http://x/7")
    await store.put_filing(FilingRecord("r1", "filed", issue))
    record = await store.get_filing("r1")
    assert record is not None and record.issue == issue
    await store.close()


async def test_stats_count_outcomes_and_step_durations(tmp_path: Path) -> None:
    store = await new_store(tmp_path / "s.db")
    r = report()
    start = utcnow()
    await store.create_request(new_request("r1", r.id, start), r, None)
    for step in (Step.TRIAGE, Step.TICKET_CREATION, Step.GITHUB):
        await store.apply(StepChanged(request_id="r1", step=step, status=StepStatus.STARTED))
        await store.apply(StepChanged(request_id="r1", step=step, status=StepStatus.COMPLETED))
    stats = await store.stats(start - timedelta(seconds=1))
    assert (stats.total, stats.completed, stats.failed) == (1, 1, 0)
    assert len(stats.processing_seconds) == 1
    assert len(stats.step_seconds["triage"]) == 1
    await store.close()


async def test_embeddings_round_trip_in_chunks(tmp_path: Path) -> None:
    store = await new_store(tmp_path / "s.db")
    vectors = {f"r{i}": bytes([i % 256]) * 1536 for i in range(1200)}  # > one IN (...) chunk
    for rid, vector in vectors.items():
        await store.put_embedding(rid, vector)
    await store.put_embedding("r7", b"\x01" * 1536)  # the latest write wins
    found = await store.embeddings([*vectors, "missing"])
    assert found == {**vectors, "r7": b"\x01" * 1536}
    await store.close()


async def test_a_database_from_before_the_review_queue_gains_its_table(tmp_path: Path) -> None:
    store = await new_store(tmp_path / "s.db")
    await store.db.write(lambda conn: conn.execute("DROP TABLE review_examples"))
    await store.close()
    store = await new_store(tmp_path / "s.db")
    await store.put_review_example("r1", {"label": "bug"})
    assert await store.review_examples() == [{"label": "bug"}]
    await store.close()
