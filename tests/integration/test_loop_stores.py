"""The loop store's contract, run against both stores (SQLite, and a real Redis):
conversations and the issues they follow, the delivery ledger and its due retries, the
reply ledger, opt-outs and the signing key. Plus the request's resolution folded by both
state stores."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from ai_pipeline.adapters.loop.redis import RedisLoopStore
from ai_pipeline.adapters.loop.sqlite import SqliteLoopStore
from ai_pipeline.adapters.redis_client import connect
from ai_pipeline.adapters.sqlite_db import SqliteDatabase
from ai_pipeline.domain import notify_plan
from ai_pipeline.domain.events import Step, StepChanged, StepStatus, utcnow
from ai_pipeline.domain.loop_events import IssueResolutionChanged
from ai_pipeline.domain.notifications import Delivery, DeliveryState
from ai_pipeline.domain.replies import ReplyRecord, ReplyState
from ai_pipeline.domain.request_state import new_request
from ai_pipeline.domain.resolution import CloseReason, ResolutionState, closed
from ai_pipeline.loop_ports import LoopStore
from ai_pipeline.ports import StateStore
from tests.factories import report
from tests.fakes.loop import conversation, filed_state

pytestmark = pytest.mark.anyio
BACKENDS = ["sqlite", pytest.param("redis", marks=pytest.mark.services)]


@pytest.fixture(params=BACKENDS)
async def loop(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[LoopStore]:
    db = SqliteDatabase(tmp_path / "pipeline.db")
    store: LoopStore
    if request.param == "sqlite":
        store = SqliteLoopStore(db)
    else:
        redis_server: Any = request.getfixturevalue("redis_server")
        prefix = f"test-{uuid.uuid4().hex[:12]}:"  # tests share one redis-server
        store = RedisLoopStore(connect(redis_server.url), prefix)
    await store.start()
    try:
        yield store
    finally:
        await store.close()
        await db.close()


async def test_a_conversation_is_kept_and_found_by_its_issue(loop: LoopStore) -> None:
    c = conversation("r-1")
    await loop.put_conversation(c)
    await loop.put_conversation(conversation("r-2").model_copy(update={"filed_as": "comment"}))
    assert await loop.get_conversation("r-1") == c
    assert await loop.get_conversation("r-9") is None
    assert await loop.following("local", 7) == ["r-1", "r-2"]
    assert await loop.following("github", 7) == []
    assert await loop.count_unresolved() == 1  # a comment on an issue is not an issue


async def test_conversations_needing_info_are_paged_and_leave_once_answered_or_resolved(
    loop: LoopStore,
) -> None:
    ids = [f"r-{n}" for n in range(5)]
    for rid in ids:
        await loop.put_conversation(conversation(rid))
    await loop.put_conversation(conversation("r-none", questions=[]))
    first = await loop.needing_info(3)
    rest = await loop.needing_info(3, after=first[-1].request_id)
    assert [c.request_id for c in first + rest] == ids
    answered = conversation("r-1")
    await loop.put_conversation(answered.model_copy(update={"answered": answered.questions}))
    resolved = conversation("r-2")
    at = resolved.filed_at + timedelta(days=1)
    await loop.put_conversation(
        resolved.model_copy(update={"resolution": closed(CloseReason.COMPLETED, at)})
    )
    assert [c.request_id for c in await loop.needing_info(10)] == ["r-0", "r-3", "r-4"]


async def test_resolved_conversations_are_found_by_when_they_were_resolved(
    loop: LoopStore,
) -> None:
    base = conversation("r-0")
    for n, reason in enumerate([CloseReason.COMPLETED, CloseReason.NOT_PLANNED], start=1):
        at = base.filed_at + timedelta(days=n)
        c = conversation(f"r-{n}").model_copy(update={"resolution": closed(reason, at)})
        await loop.put_conversation(c)
    await loop.put_conversation(base)
    since = await loop.resolved_since(base.filed_at + timedelta(days=1, hours=12))
    assert [c.request_id for c in since] == ["r-2"]
    everything = await loop.resolved_since(base.filed_at)
    assert [c.resolution.state for c in everything] == [
        ResolutionState.FIXED,
        ResolutionState.NOT_PLANNED,
    ]
    assert await loop.count_unresolved() == 1


async def test_due_deliveries_are_claimed_once_until_their_lease_runs_out(loop: LoopStore) -> None:
    c = conversation()
    now = c.filed_at
    webhook, email = notify_plan.filed(c, now)
    await loop.put_delivery(Delivery(notification=webhook, next_attempt_at=now, updated_at=now))
    later = now + timedelta(minutes=5)
    await loop.put_delivery(Delivery(notification=email, next_attempt_at=later, updated_at=now))
    lease = now + timedelta(seconds=60)
    claims = await asyncio.gather(*(loop.claim_due(now, lease, 10) for _ in range(4)))
    assert sorted(len(c) for c in claims) == [0, 0, 0, 1]  # one sweep wins it
    (claimed,) = next(c for c in claims if c)
    assert claimed.delivery_id == webhook.delivery_id and claimed.next_attempt_at == lease
    assert await loop.claim_due(now + timedelta(seconds=59), lease, 10) == []
    again = await loop.claim_due(now + timedelta(minutes=5), later + timedelta(minutes=1), 10)
    assert {d.delivery_id for d in again} == {webhook.delivery_id, email.delivery_id}
    done = claimed.model_copy(update={"state": DeliveryState.DELIVERED, "next_attempt_at": None})
    await loop.put_delivery(done)
    stored = await loop.get_delivery(webhook.delivery_id)
    assert stored is not None and stored.state is DeliveryState.DELIVERED
    assert await loop.claim_due(now + timedelta(days=1), now + timedelta(days=2), 10) != []
    assert all(
        d.delivery_id != webhook.delivery_id
        for d in await loop.claim_due(now + timedelta(days=3), now + timedelta(days=4), 10)
    )


async def test_replies_are_kept_in_order_and_updated_in_place(loop: LoopStore) -> None:
    c = conversation()
    for n in (2, 1):
        await loop.put_reply(
            ReplyRecord(
                reply_id=f"r_{n}",
                request_id=c.request_id,
                text=f"answer {n}",
                at=c.filed_at + timedelta(hours=n),
                by="reporter",
            )
        )
    first = await loop.get_reply("r_1")
    assert first is not None and first.state is ReplyState.PENDING
    await loop.put_reply(first.model_copy(update={"state": ReplyState.POSTED}))
    replies = await loop.replies_of(c.request_id)
    assert [(r.reply_id, r.state) for r in replies] == [
        ("r_1", ReplyState.POSTED),
        ("r_2", ReplyState.PENDING),
    ]
    assert await loop.replies_of("nobody") == []


async def test_an_opt_out_is_kept_and_the_signing_key_never_changes(loop: LoopStore) -> None:
    c = conversation()
    assert not await loop.opted_out("h1")
    await loop.opt_out("h1", c.filed_at)
    await loop.opt_out("h1", c.filed_at + timedelta(days=1))
    assert await loop.opted_out("h1") and not await loop.opted_out("h2")
    keys = await asyncio.gather(*(loop.signing_key() for _ in range(5)))
    assert len(set(keys)) == 1 and len(keys[0]) == 32


async def test_both_state_stores_fold_a_completed_requests_resolution(store: StateStore) -> None:
    # Now, not a fixed date: Redis drops a request a day after it ended.
    filed, filing = filed_state("r-1", utcnow())
    r = report()
    await store.create_request(new_request("r-1", r.id, filed.created_at), r, None)
    triage = filed.progress[Step.TRIAGE]
    await store.apply(
        StepChanged(
            request_id="r-1",
            step=Step.TRIAGE,
            status=StepStatus.COMPLETED,
            at=triage.timestamp,
            data=triage.data,
        )
    )
    await store.apply(filing)
    change = IssueResolutionChanged(
        request_id="r-1",
        tracker="local",
        issue_number=7,
        resolution=closed(CloseReason.DUPLICATE, filed.created_at + timedelta(hours=3), 3),
        source="local",
    )
    assert await store.apply(change) is not None
    assert await store.apply(change) is None  # replayed
    stored = await store.get("r-1")
    assert stored is not None and stored.resolution is not None
    assert stored.resolution.state is ResolutionState.DUPLICATE
    assert stored.public_view()["resolution"]["duplicate_issue_number"] == 3
    assert stored.needs_info is not None and stored.needs_info.questions
