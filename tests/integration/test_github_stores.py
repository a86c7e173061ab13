"""The GitHub App mode's store, one contract for SQLite and real Redis."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from ai_pipeline.adapters.sqlite_db import SqliteDatabase
from ai_pipeline.adapters.state.github_redis import RedisGitHubStore
from ai_pipeline.adapters.state.github_sqlite import SqliteGitHubStore
from ai_pipeline.domain.github import ActedOn, ActionRecord, IssueRecord, IssueRef, claim_version
from ai_pipeline.ports import GitHubStore

pytestmark = pytest.mark.anyio
ISSUE = IssueRef("Acme/Widgets", 7)


@pytest.fixture(params=["sqlite", "redis"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[GitHubStore]:
    if request.param == "sqlite":
        db = SqliteDatabase(tmp_path / "gh.db")
        sqlite = SqliteGitHubStore(db)
        await sqlite.start()
        yield sqlite
        await db.close()
        return
    server: Any = request.getfixturevalue("redis_server")
    redis = RedisGitHubStore(server.url, key_prefix=f"t{uuid.uuid4().hex[:8]}:")
    await redis.start()
    yield redis
    await redis.close()


async def test_an_issue_record_is_created_changed_and_listed(store: GitHubStore) -> None:
    assert await store.get_issue(ISSUE) is None
    await store.update_issue(ISSUE, lambda r: r.model_copy(update={"title": "Crash"}))
    await store.update_issue(IssueRef("acme/widgets", 3), lambda r: r)
    await store.update_issue(IssueRef("acme/other", 1), lambda r: r)
    record = await store.get_issue(IssueRef("acme/WIDGETS", 7))  # names are case-blind
    assert record is not None and record.title == "Crash" and record.repository == "Acme/Widgets"
    assert [r.number for r in await store.issues("acme/widgets")] == [3, 7]


async def test_concurrent_changes_of_one_record_are_never_lost(store: GitHubStore) -> None:
    """Twenty deliveries claim their versions at once (two API replicas, say): each gets its
    own, none is lost, and a redelivery gets its version back."""

    async def claim(delivery: str) -> IssueRecord:
        return await store.update_issue(ISSUE, lambda r: claim_version(r, delivery, first=False))

    await asyncio.gather(*(claim(f"d{n}") for n in range(20)))
    record = await claim("d3")
    assert sorted(record.deliveries.values()) == list(range(2, 22))
    assert record.latest_version == 21


async def test_a_pass_begins_once_holds_the_issue_and_ends_atomically(store: GitHubStore) -> None:
    pending = ActionRecord(
        repository="Acme/Widgets", number=7, version=2, request_id="r", state="pending"
    )
    await store.update_issue(ISSUE, lambda r: r.model_copy(update={"title": "Crash"}))

    begun, done, record = await store.begin_pass(pending, "a", 30)
    assert (begun, done) == ("go", None) and record is not None and record.title == "Crash"
    assert (await store.begin_pass(pending, "b", 30))[0] == "busy"  # a's lease holds
    stored = await store.get_action(IssueRef("acme/widgets", 7), 2)
    assert stored is not None and stored.state == "pending"

    acted = ActedOn(repository="Acme/Widgets", issue_number=7, labels_applied=["bug"])
    finished = pending.model_copy(update={"state": "done", "acted_on": acted})
    ended = await store.end_pass(finished, lambda r: r.model_copy(update={"acted_version": 2}), "a")
    assert ended.acted_version == 2 and ended.title == "Crash"

    again, done, _ = await store.begin_pass(pending, "b", 30)  # a redelivery, elsewhere
    assert again == "acted" and done is not None and done.acted_on == acted
    assert await store.lease(ISSUE, "b", 30)  # the lease was released at the end
    other = pending.model_copy(update={"version": 3})
    assert (await store.begin_pass(other, "a", 30))[0] == "busy"


async def test_a_delivery_is_remembered(store: GitHubStore) -> None:
    assert not await store.seen_delivery("abc")
    await store.mark_delivery("abc", "issues")
    await store.mark_delivery("abc", "issues")
    assert await store.seen_delivery("abc") and not await store.seen_delivery("abd")


async def test_a_lease_is_held_by_one_holder_until_released_or_expired(store: GitHubStore) -> None:
    assert await store.lease(ISSUE, "a", 30)
    assert not await store.lease(ISSUE, "b", 30)
    assert await store.lease(ISSUE, "a", 30)  # renewed by its holder
    await store.release(ISSUE, "b")  # not b's to release
    assert not await store.lease(ISSUE, "b", 30)
    await store.release(ISSUE, "a")
    assert await store.lease(ISSUE, "b", 0.2)
    deadline = asyncio.get_running_loop().time() + 10
    while not await store.lease(ISSUE, "a", 30):  # until b's lease runs out
        assert asyncio.get_running_loop().time() < deadline, "the lease never expired"
        await asyncio.sleep(0.05)
