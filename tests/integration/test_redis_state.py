"""The Redis state store against a real redis-server: the same contract as the SQLite store,
plus what only Redis has — expiry of ended requests, index sets, riding out a restart."""

from __future__ import annotations

import random
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import anyio
import pytest
from redis.asyncio import Redis

from ai_pipeline.adapters import redis_client
from ai_pipeline.adapters.bus.sqlite import SqliteBus
from ai_pipeline.adapters.sqlite_db import SqliteDatabase
from ai_pipeline.adapters.state import redis as redis_state
from ai_pipeline.adapters.state.redis import RedisStateStore
from ai_pipeline.domain.errors import UnavailableError
from ai_pipeline.domain.events import Step, StepChanged, StepStatus, utcnow
from ai_pipeline.domain.models import FiledIssue
from ai_pipeline.domain.request_state import ACTIVE, RequestStatus, fold, new_request
from ai_pipeline.domain.submissions import IdConflict, fingerprint
from ai_pipeline.ports import FilingRecord, OutgoingMessage
from tests.factories import report

pytestmark = pytest.mark.anyio

ALL = list(RequestStatus)


@pytest.fixture
async def bus(tmp_path: Path) -> AsyncIterator[SqliteBus]:
    bus = SqliteBus(SqliteDatabase(tmp_path / "bus.db"), {"t": 1})
    await bus.start()
    yield bus
    await bus.close()


@pytest.fixture
def prefix() -> str:
    """Tests share one redis-server: each keeps to its own key prefix."""
    return f"test-{uuid.uuid4().hex[:12]}:"


@asynccontextmanager
async def open_store(
    redis_server: Any, bus: SqliteBus, prefix: str, **options: Any
) -> AsyncIterator[RedisStateStore]:
    store = RedisStateStore(redis_server.url, bus=bus, key_prefix=prefix, **options)
    await store.start()
    try:
        yield store
    finally:
        await store.close()


@pytest.fixture
async def store(redis_server: Any, bus: SqliteBus, prefix: str) -> AsyncIterator[RedisStateStore]:
    async with open_store(redis_server, bus, prefix) as store:
        yield store


@pytest.fixture
async def raw(redis_server: Any) -> AsyncIterator[Redis]:
    """A plain client, to look at the keys the store writes."""
    client = Redis.from_url(redis_server.url, decode_responses=True)
    yield client
    await client.aclose()


def changed(rid: str, step: Step, status: StepStatus, at: datetime, **kw: Any) -> StepChanged:
    return StepChanged(request_id=rid, step=step, status=status, at=at, **kw)


def life(rid: str, start: datetime) -> list[StepChanged]:
    """Every event of a request that goes all the way, one second apart."""
    events = []
    for i, step in enumerate((Step.TRIAGE, Step.TICKET_CREATION, Step.GITHUB)):
        at = start + timedelta(seconds=2 * i + 1)
        issue = FiledIssue(number=7, url="https://github.test/7") if step is Step.GITHUB else None
        events.append(changed(rid, step, StepStatus.STARTED, at))
        events.append(
            changed(rid, step, StepStatus.COMPLETED, at + timedelta(seconds=1), issue=issue)
        )
    return events


async def submit(
    store: RedisStateStore, rid: str, at: datetime | None = None, key: str | None = None
) -> None:
    r = report()
    _, created = await store.create_request(new_request(rid, r.id, at or utcnow()), r, key)
    assert created


async def test_the_outbox_is_published_with_a_new_request_only(
    store: RedisStateStore, bus: SqliteBus
) -> None:
    r = report()
    outbox = [OutgoingMessage("t", "r1", b"first")]
    await store.create_request(new_request("r1", r.id, utcnow()), r, None, outbox=outbox)
    await store.create_request(new_request("r2", r.id, utcnow()), r, None, outbox=outbox)
    assert [m.value for m in await bus.consumer("g", ["t"]).fetch(10, 0.1)] == [b"first"]
    assert not store.publishes_outbox_atomically


async def test_a_bug_report_id_creates_one_request_only(
    store: RedisStateStore, raw: Redis, prefix: str
) -> None:
    r = report()
    first, created = await store.create_request(new_request("r1", r.id, utcnow()), r, None)
    again, created_again = await store.create_request(new_request("r2", r.id, utcnow()), r, None)
    assert created and not created_again
    assert again.request_id == first.request_id == "r1"
    assert await store.get("r2") is None
    record = await raw.hgetall(f"{prefix}request:r1")
    assert {"state", "report", "rank", "seq"} <= record.keys()
    assert record["seq"] == "1" and record["rank"] == str(first.rank)
    lookup = await raw.hgetall(f"{prefix}submission:open:id:{r.id}")
    assert lookup == {"request": "r1", "fingerprint": fingerprint(r), "status": "submitted"}
    assert await store.get_report("r1") == r
    assert store.operations["redis|create_request"] == 2


async def test_an_idempotency_key_returns_the_first_request_and_refuses_another_report(
    store: RedisStateStore, raw: Redis, prefix: str
) -> None:
    a, b = report(), report()
    await store.create_request(new_request("r1", a.id, utcnow()), a, "key-1")
    state, created = await store.create_request(new_request("r2", a.id, utcnow()), a, "key-1")
    assert not created and state.request_id == "r1"
    with pytest.raises(IdConflict, match="key-1"):
        await store.create_request(new_request("r3", b.id, utcnow()), b, "key-1")
    assert await raw.hget(f"{prefix}submission:open:key:key-1", "request") == "r1"
    assert await raw.exists(f"{prefix}submission:open:id:{b.id}", f"{prefix}request:r3") == 0


async def test_concurrent_duplicate_submissions_create_one_request(store: RedisStateStore) -> None:
    r = report()
    results = []

    async def create(i: int) -> None:
        results.append(await store.create_request(new_request(f"r{i}", r.id, utcnow()), r, None))

    async with anyio.create_task_group() as tg:
        for i in range(20):
            tg.start_soon(create, i)
    assert sum(created for _, created in results) == 1
    assert len({state.request_id for state, _ in results}) == 1
    assert (await store.list_requests(ALL, limit=50, offset=0)).total == 1


async def test_apply_folds_a_request_through_its_whole_life(
    store: RedisStateStore, raw: Redis, prefix: str
) -> None:
    start = utcnow() - timedelta(seconds=6)  # so that it ends now
    await submit(store, "r1", start)
    states = [await store.apply(e) for e in life("r1", start)]
    assert [s.status if s else None for s in states] == [RequestStatus.PROCESSING] * 5 + [
        RequestStatus.COMPLETED
    ]
    final = await store.get("r1")
    assert final is not None and final == states[-1]
    assert final.github_issue_number == 7 and final.processing_time_seconds == 6.0
    assert final.progress[Step.TRIAGE].duration_seconds == 1.0
    assert (await store.list_requests(list(ACTIVE), limit=10, offset=0)).total == 0
    done = await store.list_requests([RequestStatus.COMPLETED], limit=10, offset=0)
    assert [s.request_id for s in done.requests] == ["r1"]
    assert await raw.hget(f"{prefix}request:r1", "seq") == "7"
    # Ended: the record lives one more day, its lookup 30 days from its last change.
    ttl = await raw.pttl(f"{prefix}request:r1")
    assert 0 < ttl <= 86_400_000
    final_report = await store.get_report("r1")
    assert final_report is not None
    lookup = f"{prefix}submission:open:id:{final_report.id}"
    assert 29 * 86_400_000 < await raw.pttl(lookup) <= 30 * 86_400_000
    assert await raw.hget(lookup, "status") == "completed"
    assert store.operations["redis|apply"] == 6


async def test_stale_and_replayed_events_never_move_a_request_backwards(
    store: RedisStateStore, raw: Redis, prefix: str
) -> None:
    start = utcnow()
    await submit(store, "r1", start)
    events = life("r1", start)
    done = events[3]  # ticket_creation completed
    assert await store.apply(done) is not None
    seq = await raw.hget(f"{prefix}request:r1", "seq")
    assert await store.apply(events[0]) is None  # triage started, late
    assert await store.apply(done) is None  # replayed
    state = await store.get("r1")
    assert state is not None and state.current_step is Step.TICKET_CREATION
    assert await raw.hget(f"{prefix}request:r1", "seq") == seq
    # Nothing moves an ended request, not even a later step.
    assert await store.apply(events[-1]) is not None
    assert await store.apply(changed("r1", Step.GITHUB, StepStatus.FAILED, utcnow())) is None
    state = await store.get("r1")
    assert state is not None and state.status is RequestStatus.COMPLETED


async def test_concurrent_applies_on_one_request_end_consistent(
    store: RedisStateStore, raw: Redis, prefix: str
) -> None:
    start = utcnow()
    await submit(store, "r1", start)
    events = life("r1", start) * 5
    random.Random(7).shuffle(events)
    results = []

    async def apply(event: StepChanged) -> None:
        results.append(await store.apply(event))

    async with anyio.create_task_group() as tg:
        for event in events:
            tg.start_soon(apply, event)
    winners = [s for s in results if s is not None]
    # Each write won a compare-and-set on its own version: no rank was written twice.
    assert len({s.rank for s in winners}) == len(winners)
    assert await raw.hget(f"{prefix}request:r1", "seq") == str(1 + len(winners))
    assert store.operations["redis|apply_conflict"] > 0
    final = await store.get("r1")
    assert final is not None and final.status is RequestStatus.COMPLETED
    assert final.rank == max(e.rank for e in events)
    assert (await store.list_requests([RequestStatus.COMPLETED], limit=10, offset=0)).total == 1
    assert (await store.list_requests(list(ACTIVE), limit=10, offset=0)).total == 0
    assert await store.stuck(utcnow() + timedelta(hours=1), limit=10) == []


async def test_ended_requests_expire_and_leave_listing_and_counts(
    redis_server: Any, bus: SqliteBus, prefix: str
) -> None:
    async with open_store(redis_server, bus, prefix, terminal_ttl_seconds=1) as store:
        # Its last event is now: it expires in a second.
        start = utcnow() - timedelta(seconds=6)
        r = report()
        await store.create_request(new_request("done", r.id, start), r, "key-done")
        await submit(store, "open", start)
        for event in life("done", start):
            await store.apply(event)
        assert (await store.list_requests(ALL, limit=10, offset=0)).total == 2
        with anyio.fail_after(10):
            while await store.get("done") is not None:
                await anyio.sleep(0.1)
        completed = await store.list_requests([RequestStatus.COMPLETED], limit=10, offset=0)
        assert (completed.total, completed.requests) == (0, [])
        every = await store.list_requests(ALL, limit=10, offset=0)
        assert (every.total, [s.request_id for s in every.requests]) == (1, ["open"])
        stats = await store.stats(start - timedelta(minutes=1))
        assert (stats.total, stats.completed) == (1, 0)
        # Samples outlive the record: they serve the 30-day metrics.
        assert len(stats.processing_seconds) == 1
        # Its lookups did not: the same report is still the same request, once ended.
        state, created = await store.create_request(new_request("again", r.id, utcnow()), r, None)
        assert (created, state.request_id, state.status) == (False, "done", "completed")
        with pytest.raises(IdConflict):
            other = report()
            await store.create_request(new_request("keyed", other.id, utcnow()), other, "key-done")


async def test_a_rebuilt_request_keeps_only_the_rest_of_its_lifetime(
    store: RedisStateStore, raw: Redis, prefix: str
) -> None:
    """Replaying an old log: an ended request gets what remains of its TTL, or nothing."""
    for rid, ended_ago in (("recent", timedelta(hours=23)), ("old", timedelta(days=2))):
        start = utcnow() - ended_ago - timedelta(minutes=1)
        submitted = changed(
            rid, Step.SUBMITTED, StepStatus.COMPLETED, start, data={"bug_report_id": f"B-{rid}"}
        )
        assert await store.apply(submitted) is not None
        failed = changed(rid, Step.TRIAGE, StepStatus.FAILED, start + timedelta(minutes=1))
        state = await store.apply(failed)
        assert state is not None and state.status is RequestStatus.FAILED
    assert 0 < await raw.pttl(f"{prefix}request:recent") <= 3_600_000
    assert await store.get("old") is None
    failed_page = await store.list_requests([RequestStatus.FAILED], limit=10, offset=0)
    assert [s.request_id for s in failed_page.requests] == ["recent"]
    stats = await store.stats(utcnow() - timedelta(days=3))
    assert (stats.total, stats.failed) == (1, 1)
    assert stats.step_failures["triage"] == 2


async def test_a_redriven_request_lives_on_until_it_ends_again(
    store: RedisStateStore, raw: Redis, prefix: str
) -> None:
    """Failed, its key and lookups expire a TTL later; reopened, they must not (nor may the
    expiry sweep drop it from the index sets), until it ends again."""
    r = report()
    start = utcnow() - timedelta(minutes=5)
    await store.create_request(new_request("r1", r.id, start), r, "key-1")
    await store.apply(changed("r1", Step.TRIAGE, StepStatus.FAILED, start + timedelta(minutes=1)))
    assert await raw.pttl(f"{prefix}request:r1") > 0

    await store.apply(changed("r1", Step.TRIAGE, StepStatus.REDRIVEN, utcnow()))

    for key in ("request:r1", f"submission:open:id:{r.id}", "submission:open:key:key-1"):
        assert await raw.pttl(f"{prefix}{key}") == -1, key  # no expiry
    assert await raw.zscore(f"{prefix}index:expiry", "r1") is None
    assert await raw.zscore(f"{prefix}index:active", "r1") is not None
    done = changed("r1", Step.GITHUB, StepStatus.COMPLETED, utcnow())
    state = await store.apply(done)
    assert state is not None and state.status is RequestStatus.COMPLETED
    assert await raw.pttl(f"{prefix}request:r1") > 0


async def test_listing_filters_by_status_and_paginates(store: RedisStateStore) -> None:
    base = utcnow() - timedelta(hours=1)
    for i in range(6):
        await submit(store, f"r{i}", base + timedelta(minutes=i))
    await store.apply(changed("r0", Step.TRIAGE, StepStatus.FAILED, utcnow(), error="boom"))
    for event in life("r1", base + timedelta(minutes=1)):
        await store.apply(event)
    active = await store.list_requests(list(ACTIVE), limit=3, offset=0)
    assert active.total == 4
    assert [s.request_id for s in active.requests] == ["r5", "r4", "r3"]
    rest = await store.list_requests(list(reversed(ACTIVE)), limit=3, offset=3)
    assert (rest.total, [s.request_id for s in rest.requests]) == (4, ["r2"])
    failed = await store.list_requests([RequestStatus.FAILED], limit=10, offset=0)
    assert [s.request_id for s in failed.requests] == ["r0"]
    assert failed.requests[0].error_message == "boom"
    completed = await store.list_requests([RequestStatus.COMPLETED], limit=10, offset=0)
    assert [s.request_id for s in completed.requests] == ["r1"]
    submitted = await store.list_requests([RequestStatus.SUBMITTED], limit=10, offset=0)
    assert submitted.total == 4
    every = await store.list_requests(ALL, limit=4, offset=2)
    assert every.total == 6
    assert [s.request_id for s in every.requests] == ["r3", "r2", "r1", "r0"]
    assert (await store.list_requests(ALL, limit=0, offset=0)).requests == []
    beyond = await store.list_requests(ALL, limit=10, offset=10)
    assert (beyond.total, beyond.requests) == (6, [])


async def test_ties_in_created_at_go_by_request_id_descending(store: RedisStateStore) -> None:
    at = utcnow()
    for rid in ("b", "c", "a"):
        await submit(store, rid, at)
    page = await store.list_requests(ALL, limit=10, offset=0)
    assert [s.request_id for s in page.requests] == ["c", "b", "a"]


async def test_only_indexed_status_sets_can_be_listed(store: RedisStateStore) -> None:
    for statuses in (
        [RequestStatus.SUBMITTED, RequestStatus.COMPLETED],
        [RequestStatus.COMPLETED, RequestStatus.FAILED],
        [],
    ):
        with pytest.raises(ValueError, match="no index"):
            await store.list_requests(statuses, limit=10, offset=0)


async def test_stuck_lists_only_active_requests_without_recent_progress(
    store: RedisStateStore,
) -> None:
    long_ago = utcnow() - timedelta(minutes=10)
    for rid in ("old", "moved", "ended"):
        await submit(store, rid, long_ago)
    await submit(store, "fresh")
    await store.apply(changed("moved", Step.TRIAGE, StepStatus.STARTED, utcnow()))
    await store.apply(changed("ended", Step.TRIAGE, StepStatus.FAILED, long_ago))
    stuck = await store.stuck(utcnow() - timedelta(minutes=5), limit=10)
    assert [s.request_id for s in stuck] == ["old"]
    assert await store.stuck(utcnow() - timedelta(minutes=5), limit=0) == []


async def test_recent_reports_are_newest_first_and_only_those_with_a_report(
    store: RedisStateStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(redis_state, "REPORT_CHUNK", 2)  # several chunks from a few requests
    base = utcnow() - timedelta(hours=1)
    reports = {}
    for i in range(5):
        r = report()
        reports[f"r{i}"] = r
        await store.create_request(new_request(f"r{i}", r.id, base + timedelta(minutes=i)), r, None)
    await store.apply(
        changed("bare", Step.SUBMITTED, StepStatus.COMPLETED, utcnow(), data={"bug_report_id": "B"})
    )
    found = await store.recent_reports(10)
    assert [(s.request_id, r) for s, r in found] == [
        (rid, reports[rid]) for rid in ("r4", "r3", "r2", "r1", "r0")
    ]
    assert [s.request_id for s, _ in await store.recent_reports(3)] == ["r4", "r3", "r2"]


async def test_stats_count_outcomes_and_step_durations(store: RedisStateStore) -> None:
    start = utcnow() - timedelta(minutes=30)
    await submit(store, "before", start - timedelta(hours=2))
    for event in life("before", start - timedelta(hours=2)):
        await store.apply(event)
    await submit(store, "done", start)
    for event in life("done", start):
        await store.apply(event)
    await submit(store, "failed", start + timedelta(minutes=1))
    for event in life("failed", start + timedelta(minutes=1))[:3]:
        await store.apply(event)
    await store.apply(
        changed("failed", Step.TICKET_CREATION, StepStatus.FAILED, start + timedelta(minutes=2))
    )
    await submit(store, "open", start + timedelta(minutes=3))

    stats = await store.stats(start - timedelta(seconds=1))
    assert (stats.total, stats.completed, stats.failed, stats.active) == (3, 1, 1, 1)
    assert stats.processing_seconds == [6.0]
    assert stats.step_seconds == {"triage": [1.0, 1.0], "ticket_creation": [1.0], "github": [1.0]}
    assert stats.step_failures == {"triage": 0, "ticket_creation": 1, "github": 0}

    cheap = await store.stats(start - timedelta(hours=3), sample_limit=1, with_steps=False)
    assert (cheap.total, cheap.completed, cheap.failed) == (4, 2, 1)
    assert cheap.processing_seconds == [6.0]
    assert cheap.step_seconds == {} and cheap.step_failures == {}


async def test_the_filing_ledger_remembers_pending_and_filed(
    redis_server: Any, bus: SqliteBus, prefix: str, raw: Redis
) -> None:
    async with open_store(redis_server, bus, prefix, filing_ttl_seconds=3600) as store:
        assert await store.get_filing("r1") is None
        await store.put_filing(FilingRecord("r1", "pending", None))
        record = await store.get_filing("r1")
        assert record == FilingRecord("r1", "pending", None)
        await store.claim_filing("r1", "host:1:a", 60, attempt=True)
        assert 0 < await raw.pttl(f"{prefix}filing:r1") <= 3_600_000
        issue = FiledIssue(number=7, url="http://x/7")
        await store.put_filing(FilingRecord("r1", "filed", issue))
        assert await store.get_filing("r1") == FilingRecord("r1", "filed", issue)
        assert sorted(await raw.hkeys(f"{prefix}filing:r1")) == ["issue", "state"]  # no lease
        assert 0 < await raw.pttl(f"{prefix}filing:r1") <= 3_600_000


async def test_the_log_rebuilds_a_request_through_apply_then_put_report(
    store: RedisStateStore, raw: Redis, prefix: str
) -> None:
    r = report()
    submitted = changed(
        "r1", Step.SUBMITTED, StepStatus.COMPLETED, utcnow(), data={"bug_report_id": r.id}
    )
    assert fold(None, submitted) is not None
    assert await store.apply(changed("r1", Step.TRIAGE, StepStatus.STARTED, utcnow())) is None
    state = await store.apply(submitted)
    assert state is not None and state.bug_report_id == r.id
    assert await store.get("r1") == state
    assert await store.get_report("r1") is None
    # Whose id it is comes with the report: no lookup until then.
    assert await raw.exists(f"{prefix}submission:open:id:{r.id}") == 0

    assert await store.put_report("r1", r, "key-1", submitter="k_a")
    assert not await store.put_report("r1", report(id=r.id), None)
    assert not await store.put_report("unknown", report(), None)
    assert await store.get_report("r1") == r
    assert await raw.hget(f"{prefix}submission:k_a:key:key-1", "request") == "r1"
    # The rebuilt request now dedupes like one created through the API, in its scope.
    again, created = await store.create_request(
        new_request("r2", r.id, utcnow()), r, None, submitter="k_a"
    )
    assert not created and again.request_id == "r1"
    keyed, created = await store.create_request(
        new_request("r3", r.id, utcnow()), r, "key-1", submitter="k_a"
    )
    assert not created and keyed.request_id == "r1"
    elsewhere, created = await store.create_request(new_request("r4", r.id, utcnow()), r, None)
    assert created and elsewhere.request_id == "r4"
    assert [s.request_id for s, _ in await store.recent_reports(10)] == ["r4", "r1"]


async def test_a_redis_restart_mid_stream_loses_no_apply(
    store: RedisStateStore, redis_server: Any
) -> None:
    start = utcnow()
    rids = [f"r{i}" for i in range(20)]
    for rid in rids:
        await submit(store, rid, start)
    events = [e for rid in rids for e in life(rid, start)]
    results = []

    async def apply_all() -> None:
        for event in events:
            results.append(await store.apply(event))
            await anyio.sleep(0.01)

    async with anyio.create_task_group() as tg:
        tg.start_soon(apply_all)
        with anyio.fail_after(30):
            while len(results) < 10:
                await anyio.sleep(0.01)
        await anyio.to_thread.run_sync(redis_server.stop)
        applied_before_restart = len(results)
        await anyio.sleep(0.5)
        await anyio.to_thread.run_sync(redis_server.start)
    assert applied_before_restart < len(events)
    assert len(results) == len(events) and all(s is not None for s in results)
    for rid in rids:
        state = await store.get(rid)
        assert state is not None and state.status is RequestStatus.COMPLETED
    assert (await store.list_requests([RequestStatus.COMPLETED], limit=50, offset=0)).total == 20


async def test_ping_reports_health_and_never_the_password(
    store: RedisStateStore, bus: SqliteBus
) -> None:
    await submit(store, "r1")
    health = await store.ping()
    assert health["status"] == "healthy" and health["backend"] == "redis"
    assert health["url"] == store.url
    assert health["keys"] >= 2 and health["used_memory"] > 0
    assert health["latency_ms"] >= 0

    down = RedisStateStore("redis://admin:s3cret@127.0.0.1:1/0?password=s3cret", bus=bus)
    health = await down.ping()
    await down.close()
    assert health["status"] == "unhealthy"
    assert health["url"] == "redis://127.0.0.1:1/0"
    assert "s3cret" not in repr(health)


async def test_a_redis_down_past_the_retries_is_reported_unavailable(
    bus: SqliteBus, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Not the message's fault: the runner redelivers instead of dead-lettering it."""
    monkeypatch.setattr(redis_client, "RETRIES", 1)
    store = RedisStateStore("redis://127.0.0.1:1/0", bus=bus)
    with pytest.raises(UnavailableError, match="redis"):
        await store.apply(changed("r1", Step.TRIAGE, StepStatus.STARTED, utcnow()))
    await store.close()


async def test_embeddings_are_kept_with_their_request_and_never_resurrect_one(
    store: RedisStateStore, redis_server: Any, prefix: str
) -> None:
    r = report()
    await store.create_request(new_request("e1", r.id, utcnow()), r, None)
    vector = bytes(range(256)) * 6  # any bytes: 384 float32 values
    await store.put_embedding("e1", vector)
    await store.put_embedding("gone", vector)  # no such request (expired, flushed)
    assert await store.embeddings(["e1", "gone", "never"]) == {"e1": vector}
    client = Redis.from_url(redis_server.url)
    try:
        assert not await client.exists(f"{prefix}request:gone")
    finally:
        await client.aclose()


async def hold(store: RedisStateStore, rid: str, at: datetime) -> None:
    """Submitted at ``at``, triaged, then held for review."""
    await submit(store, rid, at)
    for step, status in (
        (Step.TRIAGE, StepStatus.STARTED),
        (Step.TRIAGE, StepStatus.COMPLETED),
        (Step.REVIEW, StepStatus.STARTED),
    ):
        await store.apply(changed(rid, step, status, at + timedelta(seconds=1)))


async def test_the_held_index_moves_with_the_request_in_the_same_write(
    store: RedisStateStore, raw: Redis, prefix: str
) -> None:
    held, updated = f"{prefix}index:held", f"{prefix}index:active-updated"
    at = utcnow() - timedelta(minutes=30)
    for rid in ("released", "failed"):
        await hold(store, rid, at)
        # In the review queue by created_at, and out of the timeout's index.
        assert await raw.zscore(held, rid) == redis_state._ms(at)
        assert await raw.zscore(updated, rid) is None
        assert await raw.zscore(f"{prefix}index:active", rid) is not None
    later = at + timedelta(minutes=1)
    await store.apply(changed("released", Step.REVIEW, StepStatus.COMPLETED, later))
    assert await raw.zscore(held, "released") is None
    assert await raw.zscore(updated, "released") == redis_state._ms(later)
    await store.apply(changed("failed", Step.REVIEW, StepStatus.FAILED, later))
    assert await raw.zscore(held, "failed") is None
    assert await raw.zscore(updated, "failed") is None
    assert await raw.zcard(held) == 0


async def test_a_rebuilt_request_that_ended_long_ago_leaves_no_trace_in_the_held_index(
    store: RedisStateStore, raw: Redis, prefix: str
) -> None:
    start = utcnow() - timedelta(days=2)
    events = [
        changed("r1", Step.SUBMITTED, StepStatus.COMPLETED, start, data={"bug_report_id": "B-1"}),
        changed("r1", Step.TRIAGE, StepStatus.COMPLETED, start),
        changed("r1", Step.REVIEW, StepStatus.STARTED, start),
    ]
    for event in events:
        await store.apply(event)
    assert await raw.zscore(f"{prefix}index:held", "r1") is not None
    await store.apply(changed("r1", Step.REVIEW, StepStatus.FAILED, start + timedelta(minutes=1)))
    assert await store.get("r1") is None  # ended longer than the TTL ago: deleted
    assert await raw.zscore(f"{prefix}index:held", "r1") is None
    assert (await store.list_held(limit=10, offset=0)).total == 0


async def test_review_examples_are_two_prefixed_keys_that_never_expire(
    store: RedisStateStore, raw: Redis, prefix: str
) -> None:
    await store.put_review_example("r2", {"label": "b"})
    await store.put_review_example("r1", {"label": "a"})
    await store.put_review_example("r2", {"label": "c"})
    assert await raw.hgetall(f"{prefix}review-examples") == {
        "r1": '{"label": "a"}',
        "r2": '{"label": "c"}',
    }
    assert await raw.lrange(f"{prefix}review-examples:order", 0, -1) == ["r2", "r1"]
    for key in ("review-examples", "review-examples:order"):
        assert await raw.ttl(f"{prefix}{key}") == -1
    assert await store.review_examples() == [{"label": "c"}, {"label": "a"}]
