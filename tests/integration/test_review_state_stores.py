"""The review queue's part of the state store contract, run against both stores (SQLite, and
a real Redis): held requests listed oldest first, left out of ``stuck``, and the labelled
examples kept from maintainers' corrections."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pytest

from ai_pipeline.domain.events import Step, StepChanged, StepStatus, utcnow
from ai_pipeline.domain.request_state import RequestStatus, new_request
from ai_pipeline.ports import StateStore
from tests.factories import report

pytestmark = pytest.mark.anyio


def changed(rid: str, step: Step, status: StepStatus, at: datetime, **kw: Any) -> StepChanged:
    return StepChanged(request_id=rid, step=step, status=status, at=at, **kw)


async def submit(store: StateStore, rid: str, at: datetime) -> None:
    r = report()
    _, created = await store.create_request(new_request(rid, r.id, at), r, None)
    assert created


async def triaged(store: StateStore, rid: str, at: datetime) -> None:
    """Submitted at ``at`` and triaged a second later."""
    await submit(store, rid, at)
    await store.apply(changed(rid, Step.TRIAGE, StepStatus.STARTED, at + timedelta(seconds=1)))
    await store.apply(changed(rid, Step.TRIAGE, StepStatus.COMPLETED, at + timedelta(seconds=1)))


async def hold(store: StateStore, rid: str, at: datetime) -> None:
    """Submitted at ``at``, triaged, and held for review two seconds later."""
    await triaged(store, rid, at)
    state = await store.apply(
        changed(rid, Step.REVIEW, StepStatus.STARTED, at + timedelta(seconds=2))
    )
    assert state is not None and state.held_for_review


def ids(states: Any) -> list[str]:
    return [s.request_id for s in states]


async def test_held_requests_are_listed_oldest_first_with_total_and_paging(
    store: StateStore,
) -> None:
    base = utcnow() - timedelta(hours=1)
    for minutes in (3, 0, 2, 1):  # not stored in the order they were created
        await hold(store, f"h{minutes}", base + timedelta(minutes=minutes))
    await triaged(store, "drafting", base - timedelta(minutes=5))  # triaged, not held
    await submit(store, "new", base - timedelta(minutes=6))

    first = await store.list_held(limit=2, offset=0)
    assert (first.total, ids(first.requests)) == (4, ["h0", "h1"])
    assert all(s.held_for_review for s in first.requests)
    rest = await store.list_held(limit=2, offset=2)
    assert (rest.total, ids(rest.requests)) == (4, ["h2", "h3"])
    beyond = await store.list_held(limit=10, offset=10)
    assert (beyond.total, beyond.requests) == (4, [])
    assert (await store.list_held(limit=0, offset=0)).requests == []


async def test_the_review_queue_is_empty_without_held_requests(store: StateStore) -> None:
    await triaged(store, "r1", utcnow())
    page = await store.list_held(limit=10, offset=0)
    assert (page.total, page.requests) == (0, [])


async def test_released_or_failed_requests_leave_the_review_queue(store: StateStore) -> None:
    base = utcnow() - timedelta(hours=1)
    for i, rid in enumerate(("released", "failed", "waiting", "drafted")):
        await hold(store, rid, base + timedelta(minutes=i))
    assert (await store.list_held(limit=10, offset=0)).total == 4

    at = base + timedelta(minutes=10)
    released = await store.apply(changed("released", Step.REVIEW, StepStatus.COMPLETED, at))
    assert released is not None and not released.held_for_review
    assert released.status is RequestStatus.PROCESSING
    failed = await store.apply(changed("failed", Step.REVIEW, StepStatus.FAILED, at, error="x"))
    assert failed is not None and failed.status is RequestStatus.FAILED
    # A later step without the review's completion (a replayed log) releases it too.
    await store.apply(changed("drafted", Step.TICKET_CREATION, StepStatus.STARTED, at))

    page = await store.list_held(limit=10, offset=0)
    assert (page.total, ids(page.requests)) == (1, ["waiting"])
    # Released, a request is an agent's business again: the timeout watches it.
    stuck = await store.stuck(base + timedelta(minutes=20), limit=10)
    assert sorted(ids(stuck)) == ["drafted", "released"]


async def test_a_request_held_again_after_a_stale_event_stays_held(store: StateStore) -> None:
    at = utcnow() - timedelta(hours=1)
    await hold(store, "h", at)
    late = changed("h", Step.TRIAGE, StepStatus.COMPLETED, at + timedelta(seconds=5))
    assert await store.apply(late) is None
    page = await store.list_held(limit=10, offset=0)
    assert (page.total, ids(page.requests)) == (1, ["h"])


async def test_stuck_never_returns_held_requests_even_the_oldest(store: StateStore) -> None:
    long_ago = utcnow() - timedelta(hours=2)
    for i in range(5):  # the oldest of all, untouched for two hours: but waiting for a person
        await hold(store, f"held{i}", long_ago + timedelta(seconds=10 * i))
    await submit(store, "old-a", long_ago + timedelta(minutes=30))
    await triaged(store, "old-b", long_ago + timedelta(minutes=31))
    await submit(store, "fresh", utcnow())

    cutoff = utcnow() - timedelta(minutes=5)
    assert sorted(ids(await store.stuck(cutoff, limit=10))) == ["old-a", "old-b"]
    # A small limit is not used up by held requests.
    assert sorted(ids(await store.stuck(cutoff, limit=2))) == ["old-a", "old-b"]
    one = await store.stuck(cutoff, limit=1)
    assert len(one) == 1 and one[0].request_id in ("old-a", "old-b")


async def test_review_examples_round_trip_one_per_request_oldest_first(
    store: StateStore,
) -> None:
    assert await store.review_examples() == []
    examples = {
        f"r{i}": {
            "request_id": f"r{i}",
            "text": f"Editor crashes {i} — ünïcode",
            "labels": ["bug", "crash"],
            "priority": i,
            "nested": {"confidence": 1.0, "duplicate_of": None},
        }
        for i in range(3)
    }
    for rid, example in examples.items():
        await store.put_review_example(rid, example)
    assert await store.review_examples() == list(examples.values())

    # A later correction of the same request replaces its example, in its place.
    replacement = {"request_id": "r1", "text": "corrected", "labels": []}
    await store.put_review_example("r1", replacement)
    await store.put_review_example("r3", {"request_id": "r3"})
    assert await store.review_examples() == [
        examples["r0"],
        replacement,
        examples["r2"],
        {"request_id": "r3"},
    ]


async def test_review_examples_outlive_their_request(store: StateStore) -> None:
    at = utcnow() - timedelta(hours=1)
    await hold(store, "r1", at)
    await store.put_review_example("r1", {"request_id": "r1"})
    await store.apply(changed("r1", Step.REVIEW, StepStatus.FAILED, at + timedelta(minutes=1)))
    assert await store.review_examples() == [{"request_id": "r1"}]
