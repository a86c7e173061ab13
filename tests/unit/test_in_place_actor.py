"""Acting on a GitHub issue in place, exactly once: an in-memory tracker with faults, the real
SQLite GitHub store."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from ai_pipeline.adapters.sqlite_db import SqliteDatabase
from ai_pipeline.adapters.state.github_sqlite import SqliteGitHubStore
from ai_pipeline.agents.in_place import InPlaceActor
from ai_pipeline.domain.errors import UnavailableError
from ai_pipeline.domain.events import TriageCommentDrafted, decode
from ai_pipeline.domain.github import InPlaceDraft, IssueRef
from ai_pipeline.drafting.github_comment import MARKER
from ai_pipeline.observability.metrics import Metrics
from ai_pipeline.ports import TrackerComment, TrackerIssue

pytestmark = pytest.mark.anyio
REPO = "acme/widgets"
ISSUE = IssueRef(REPO, 9)
_ids = itertools.count(100)


@dataclass
class MemoryIssues:
    """The issues of one repository, with the faults a real GitHub has."""

    name: str = "github"
    issue: TrackerIssue = field(
        default_factory=lambda: TrackerIssue(
            9, "https://gh/acme/widgets/issues/9", "Crash", "open", None, (), "alice", False
        )
    )
    comments: list[TrackerComment] = field(default_factory=list)
    calls: list[str] = field(default_factory=list)
    lose_next_create: bool = False  # stored, then the answer is lost
    gone: bool = False

    async def read_issue(self, number: int) -> TrackerIssue | None:
        self.calls.append("read_issue")
        return None if self.gone else self.issue

    async def list_comments(
        self, number: int, since: datetime | None = None
    ) -> list[TrackerComment]:
        self.calls.append("list_comments")
        return list(self.comments)

    async def create_comment(self, number: int, body: str) -> TrackerComment:
        self.calls.append("create_comment")
        comment = TrackerComment(
            next(_ids), f"https://gh/c/{len(self.comments)}", body, "bot", None, None
        )
        self.comments.append(comment)
        if self.lose_next_create:
            self.lose_next_create = False
            raise UnavailableError("no answer from GitHub; the outcome is unknown")
        return comment

    async def edit_comment(self, comment_id: int, body: str) -> TrackerComment | None:
        self.calls.append("edit_comment")
        for i, comment in enumerate(self.comments):
            if comment.id == comment_id:
                self.comments[i] = replace(comment, body=body)
                return self.comments[i]
        return None

    async def add_labels(self, number: int, labels: Sequence[str]) -> list[str]:
        self.calls.append("add_labels")
        self.label(*labels)
        return list(self.issue.labels)

    async def remove_label(self, number: int, label: str) -> None:
        self.calls.append("remove_label")
        kept = tuple(x for x in self.issue.labels if x != label)
        self.issue = replace(self.issue, labels=kept)

    async def add_assignees(self, number: int, logins: Sequence[str]) -> list[str]:
        self.calls.append("add_assignees")
        self.issue = replace(self.issue, assignees=(*self.issue.assignees, *logins))
        return list(self.issue.assignees)

    def label(self, *labels: str) -> None:
        new = tuple(x for x in labels if x not in self.issue.labels)
        self.issue = replace(self.issue, labels=(*self.issue.labels, *new))

    def ours(self) -> list[TrackerComment]:
        return [c for c in self.comments if c.body.startswith(MARKER)]


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqliteGitHubStore]:
    db = SqliteDatabase(tmp_path / "gh.db")
    store = SqliteGitHubStore(db)
    await store.start()
    yield store
    await db.close()


def event(version: int = 1, request_id: str = "r-1", **draft: Any) -> TriageCommentDrafted:
    values: dict[str, Any] = {
        "repository": REPO,
        "issue_number": 9,
        "version": version,
        "labels": ["bug", "priority: high", "needs-info"],
        "questions": ["What exact steps reproduce the problem?"],
        "substance": True,
        "body": "**To act on this, we need a little more from the author**",
        "waiting": "info",
        **draft,
    }
    return TriageCommentDrafted(
        request_id=request_id, bug_report_id="gh:acme:widgets:9", draft=InPlaceDraft(**values)
    )


def answered(version: int) -> TriageCommentDrafted:
    """A later pass once the author answered: nothing missing, needs-info not wanted."""
    labels = ["bug", "priority: high"]
    return event(
        version,
        f"r-{version}",
        labels=labels,
        questions=[],
        substance=False,
        body="Thanks",
        waiting=None,
    )


def actor(tracker: MemoryIssues, store: SqliteGitHubStore, mode: str = "apply") -> InPlaceActor:
    return InPlaceActor({REPO: tracker}, store, Metrics(), mode)  # type: ignore[dict-item,arg-type]


def acted_on(messages: Sequence[Any]) -> dict[str, Any]:
    (message,) = messages
    data: dict[str, Any] = decode(message.value).data["acted_on"]  # type: ignore[union-attr]
    return data


async def test_a_pass_comments_and_labels_once_and_a_redelivery_only_reports_it(
    store: SqliteGitHubStore,
) -> None:
    tracker = MemoryIssues()
    first = acted_on(await actor(tracker, store).act(event()))
    calls = len(tracker.calls)
    again = acted_on(await actor(tracker, store).act(event()))

    assert first == again and len(tracker.calls) == calls  # the ledger answered
    assert first["labels_applied"] == ["bug", "priority: high", "needs-info"]
    assert set(tracker.issue.labels) == {"bug", "priority: high", "needs-info"}
    (comment,) = tracker.ours()
    assert first["comment_url"] == comment.url and first["issue_url"].endswith("/issues/9")


async def test_a_comment_whose_answer_was_lost_is_found_not_posted_again(
    store: SqliteGitHubStore,
) -> None:
    tracker = MemoryIssues(lose_next_create=True)
    with pytest.raises(UnavailableError):
        await actor(tracker, store).act(event())
    acted = acted_on(await actor(tracker, store).act(event()))  # the redelivery

    assert tracker.calls.count("create_comment") == 1
    (comment,) = tracker.ours()
    assert acted["comment_url"] == comment.url


async def test_a_later_pass_edits_our_comment_in_place_and_never_posts_a_second(
    store: SqliteGitHubStore,
) -> None:
    tracker = MemoryIssues()
    await actor(tracker, store).act(event())
    acted = acted_on(await actor(tracker, store).act(answered(2)))
    (comment,) = tracker.ours()

    assert "Thanks" in comment.body and acted["labels_removed"] == ["needs-info"]
    assert "needs-info" not in tracker.issue.labels
    assert tracker.calls.count("create_comment") == 1 and tracker.calls.count("edit_comment") == 1
    # A pass with the same words sends nothing new.
    await actor(tracker, store).act(answered(3))
    assert tracker.calls.count("edit_comment") == 1


async def test_an_older_pass_arriving_late_changes_nothing(store: SqliteGitHubStore) -> None:
    tracker = MemoryIssues()
    await actor(tracker, store).act(event(3, "r-3", body="Newest"))
    late = acted_on(await actor(tracker, store).act(event(2, "r-2", body="Older")))
    assert late["skipped"] == "superseded"
    (comment,) = tracker.ours()
    assert "Newest" in comment.body


@pytest.mark.parametrize("reason", ["closed", "locked", "gone"])
async def test_a_closed_locked_or_gone_issue_is_left_alone(
    store: SqliteGitHubStore, reason: str
) -> None:
    tracker = MemoryIssues(gone=reason == "gone")
    if reason == "closed":
        tracker.issue = replace(tracker.issue, state="closed")
    if reason == "locked":
        tracker.issue = replace(tracker.issue, locked=True)
    acted = acted_on(await actor(tracker, store).act(event()))
    assert acted["skipped"] == reason and tracker.comments == [] and tracker.issue.labels == ()


async def test_our_comment_deleted_by_someone_is_never_posted_again(
    store: SqliteGitHubStore,
) -> None:
    tracker = MemoryIssues()
    await actor(tracker, store).act(event())
    tracker.comments.clear()  # a maintainer deleted it
    acted = acted_on(await actor(tracker, store).act(event(2, "r-2", body="Again")))
    assert acted["skipped"] == "comment_deleted" and tracker.comments == []
    acted = acted_on(await actor(tracker, store).act(event(3, "r-3", body="And again")))
    assert acted["skipped"] == "comment_deleted" and tracker.comments == []


async def test_nothing_useful_to_say_posts_nothing(store: SqliteGitHubStore) -> None:
    tracker = MemoryIssues()
    tracker.label("bug")
    quiet = event(labels=["bug"], questions=[], substance=False, waiting=None)
    acted = acted_on(await actor(tracker, store, "suggest").act(quiet))
    assert acted["skipped"] == "quiet" and acted["comment_url"] is None
    assert "create_comment" not in tracker.calls


async def test_people_win_over_triage_in_apply_mode(store: SqliteGitHubStore) -> None:
    tracker = MemoryIssues()
    tracker.label("feature", "P3")  # a person, before we act
    acted = acted_on(await actor(tracker, store).act(event()))
    assert acted["labels_applied"] == ["needs-info"]
    assert set(tracker.issue.labels) == {"feature", "P3", "needs-info"}
    (comment,) = tracker.ours()
    assert "a person already decided: `bug`, `priority: high`" in comment.body


async def test_suggest_mode_applies_nothing_and_says_what_it_would(
    store: SqliteGitHubStore,
) -> None:
    tracker = MemoryIssues()
    acted = acted_on(await actor(tracker, store, "suggest").act(event(assignee="alice")))
    assert tracker.issue.labels == () and tracker.issue.assignees == ()
    assert acted["labels_suggested"] == ["bug", "priority: high", "needs-info"]
    assert acted["labels_applied"] == [] and acted["assignee"] is None
    (comment,) = tracker.ours()
    assert "**Suggested labels:** `bug`, `priority: high`, `needs-info`" in comment.body


async def test_apply_mode_assigns_only_an_issue_nobody_is_assigned_to(
    store: SqliteGitHubStore,
) -> None:
    free, taken = MemoryIssues(), MemoryIssues()
    taken.issue = replace(taken.issue, assignees=("bob",))
    assert acted_on(await actor(free, store).act(event(assignee="carol")))["assignee"] == "carol"
    acted = acted_on(await actor(taken, store).act(event(2, "r-2", assignee="carol")))
    assert acted["assignee"] is None and taken.issue.assignees == ("bob",)


async def test_another_process_holding_the_issue_makes_us_wait(store: SqliteGitHubStore) -> None:
    assert await store.lease(ISSUE, "someone-else", 60)
    tracker = MemoryIssues()
    with pytest.raises(UnavailableError) as raised:
        await actor(tracker, store).act(event())
    assert raised.value.retry_after == 1.0 and tracker.calls == []
    await store.release(ISSUE, "someone-else")
    assert acted_on(await actor(tracker, store).act(event()))["comment_url"]
