"""The local tracker's calls to act on an issue in place (the Tracker port's extensions)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from ai_pipeline.adapters.sqlite_db import SqliteDatabase
from ai_pipeline.adapters.trackers.local import LocalTracker
from ai_pipeline.domain.models import IssueDraft

pytestmark = pytest.mark.anyio


@pytest.fixture
async def tracker(tmp_path: Path) -> AsyncIterator[LocalTracker]:
    db = SqliteDatabase(tmp_path / "local.db")
    tracker = LocalTracker(db, "http://localhost:8000")
    yield tracker
    await db.close()


async def filed(tracker: LocalTracker) -> int:
    draft = IssueDraft(title="Crash", body="It crashes.", labels=["bug"], assignees=["bob"])
    return (await tracker.create_issue("r-1", draft)).number


async def test_an_issue_is_read_with_its_labels_and_assignees(tracker: LocalTracker) -> None:
    number = await filed(tracker)
    issue = await tracker.read_issue(number)
    assert issue is not None
    assert (issue.state, issue.labels, issue.assignees, issue.locked) == (
        "open",
        ("bug",),
        ("bob",),
        False,
    )
    assert issue.url == "http://localhost:8000/api/v1/issues/1"
    assert await tracker.read_issue(99) is None


async def test_comments_are_created_listed_since_and_edited(tracker: LocalTracker) -> None:
    number = await filed(tracker)
    first = await tracker.create_comment(number, "one")
    second = await tracker.create_comment(number, "two")
    assert [c.body for c in await tracker.list_comments(number)] == ["one", "two"]
    later = datetime.now(UTC) + timedelta(seconds=5)
    assert await tracker.list_comments(number, since=later) == []
    edited = await tracker.edit_comment(first.id, "one, edited")
    assert edited is not None and edited.body == "one, edited" and edited.id == first.id
    assert await tracker.edit_comment(second.id + 100, "nobody") is None
    assert [c["body"] for c in tracker.get_issue(number).comments] == ["one, edited", "two"]  # type: ignore[union-attr]


async def test_labels_and_assignees_are_added_and_removed_case_blind(tracker: LocalTracker) -> None:
    number = await filed(tracker)
    assert await tracker.add_labels(number, ["BUG", "needs-info"]) == ["bug", "needs-info"]
    await tracker.remove_label(number, "NEEDS-INFO")
    await tracker.remove_label(number, "absent")
    assert await tracker.add_assignees(number, ["Bob", "carol"]) == ["bob", "carol"]
    issue = await tracker.read_issue(number)
    assert issue is not None and issue.labels == ("bug",)
