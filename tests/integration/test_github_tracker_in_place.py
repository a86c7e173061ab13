"""GitHubTracker's calls to act on an issue in place, against the fake GitHub over HTTP."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta

import pytest

from ai_pipeline.adapters.trackers.github import GitHubOptions, GitHubTracker
from ai_pipeline.domain.errors import PermanentError, UnavailableError
from tests.fakes.github_server import FakeGitHub, run_fake_github

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(60)]

TOKEN = "ghp_INPLACEtoken0123456789abcdefXYZ"


@pytest.fixture(scope="module")
def github_server() -> Iterator[FakeGitHub]:
    with run_fake_github(token=TOKEN) as gh:
        yield gh


@pytest.fixture
def gh(github_server: FakeGitHub) -> FakeGitHub:
    github_server.reset()
    return github_server


@pytest.fixture
async def tracker(gh: FakeGitHub) -> AsyncIterator[GitHubTracker]:
    options = GitHubOptions(max_wait_seconds=5)
    tracker = GitHubTracker(gh.url, gh.repository, TOKEN, timeout=2.0, options=options)
    yield tracker
    await tracker.close()


async def test_an_issue_is_read_as_it_is_now(gh: FakeGitHub, tracker: GitHubTracker) -> None:
    number = gh.add_issue("Crash", "Body", ["bug"], assignees=["bob"], author="alice")["number"]
    gh.close_issue(number, reason="not_planned")
    gh.lock_issue(number)
    pull = gh.add_issue("A fix", pull_request=True)["number"]

    issue = await tracker.read_issue(number)
    assert issue is not None
    assert (issue.state, issue.state_reason, issue.locked) == ("closed", "not_planned", True)
    assert (issue.labels, issue.author, issue.assignees) == (("bug",), "alice", ("bob",))
    assert issue.url == f"{gh.web_url}/acme/widgets/issues/{number}"
    assert await tracker.read_issue(pull) is None  # a pull request is not an issue
    assert await tracker.read_issue(999) is None  # gone


async def test_comments_are_listed_over_every_page_and_since_a_time(
    gh: FakeGitHub, tracker: GitHubTracker
) -> None:
    number = gh.add_issue("Busy issue")["number"]
    for n in range(230):
        gh.add_comment(number, f"comment {n}", author="people")
    comments = await tracker.list_comments(number)
    assert [c.body for c in comments] == [f"comment {n}" for n in range(230)]
    assert comments[0].author == "people" and comments[0].created_at is not None
    later = datetime.now(UTC) + timedelta(seconds=5)
    assert await tracker.list_comments(number, since=later) == []
    listed = [r for r in gh.requests if r.path.endswith("/comments") and r.method == "GET"]
    assert [r.query["page"] for r in listed[:3]] == ["1", "2", "3"]


async def test_a_comment_is_created_and_edited_and_a_deleted_one_is_none(
    gh: FakeGitHub, tracker: GitHubTracker
) -> None:
    number = gh.add_issue("Crash")["number"]
    created = await tracker.create_comment(number, "first words")
    edited = await tracker.edit_comment(created.id, "second words")
    assert edited is not None and edited.id == created.id and edited.body == "second words"
    assert [c["body"] for c in gh.comments(number)] == ["second words"]
    gh.delete_comment(created.id)
    assert await tracker.edit_comment(created.id, "third words") is None


async def test_labels_are_added_created_if_missing_and_removed_by_their_exact_name(
    gh: FakeGitHub, tracker: GitHubTracker
) -> None:
    number = gh.add_issue("Crash", labels=["feature"])["number"]
    labels = await tracker.add_labels(number, ["bug", "priority: high"])
    assert labels == ["feature", "bug", "priority: high"]
    assert {label["name"] for label in gh.labels} >= {"bug", "priority: high"}
    await tracker.remove_label(number, "priority: high")
    await tracker.remove_label(number, "priority: high")  # gone already: nothing to do
    assert [label["name"] for label in gh.issue(number)["labels"]] == ["feature", "bug"]  # type: ignore[index]


async def test_only_assignable_people_are_added_and_nobody_is_displaced(
    gh: FakeGitHub, tracker: GitHubTracker
) -> None:
    gh.assignable = {"alice", "bob"}
    number = gh.add_issue("Crash", assignees=["bob"])["number"]
    assert await tracker.add_assignees(number, ["alice", "mallory"]) == ["bob", "alice"]


async def test_outages_hand_the_call_back_and_refusals_are_permanent(
    gh: FakeGitHub, tracker: GitHubTracker
) -> None:
    number = gh.add_issue("Crash")["number"]
    gh.fail_next(502, method="POST")
    with pytest.raises(UnavailableError):
        await tracker.create_comment(number, "hello")
    gh.rate_limit_next(method="POST", retry_after=1)  # waited out in place
    await tracker.create_comment(number, "hello")
    gh.fail_next(403, method="POST", message="Resource not accessible by integration")
    with pytest.raises(PermanentError, match="403"):
        await tracker.add_labels(number, ["bug"])
