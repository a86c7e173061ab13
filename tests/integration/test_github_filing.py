"""What GitHubTracker checks before it files, comments, the private repository and App
authentication, against the GitHub-shaped server over real HTTP."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest

from ai_pipeline.adapters.trackers.github import GitHubOptions, GitHubTracker
from ai_pipeline.adapters.trackers.github_auth import AppAuth
from ai_pipeline.domain.errors import PermanentError
from ai_pipeline.domain.models import IssueDraft
from ai_pipeline.drafting.marker import marker
from ai_pipeline.observability.metrics import Metrics
from tests.factories import app_key_pems
from tests.fakes.github_server import FakeGitHub, run_fake_github

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(60)]

TOKEN = "ghp_FILINGtoken0123456789abcdefSECRET"
Make = Callable[..., GitHubTracker]


@pytest.fixture(scope="module")
def server() -> Iterator[FakeGitHub]:
    with run_fake_github(token=TOKEN) as gh:
        yield gh


@pytest.fixture
def gh(server: FakeGitHub) -> FakeGitHub:
    server.reset()
    return server


def draft(request_id: str = "req-1", **changes: object) -> IssueDraft:
    fields: dict[str, object] = {
        "title": "Crash on save",
        "body": f"It crashes.\n{marker(request_id)}\n",
        "labels": ["bug", "priority: high"],
        "assignees": [],
    }
    return IssueDraft.model_validate(fields | changes)


@pytest.fixture
async def make(gh: FakeGitHub) -> AsyncIterator[Make]:
    made: list[GitHubTracker] = []

    def factory(metrics: Metrics | None = None, **options: Any) -> GitHubTracker:
        tracker = GitHubTracker(
            gh.url, gh.repository, TOKEN, options=GitHubOptions(**options), metrics=metrics
        )
        made.append(tracker)
        return tracker

    yield factory
    for tracker in made:
        await tracker.close()


def dropped(metrics: Metrics, kind: str) -> float:
    labels = {"tracker": "github", "kind": kind}
    return (
        metrics.registry.get_sample_value("ai_pipeline_tracker_values_dropped_total", labels) or 0
    )


# --- labels, assignees, milestone ----------------------------------------------------------


async def test_missing_labels_are_created_with_a_colour_and_existing_ones_reused(
    gh: FakeGitHub, make: Make
) -> None:
    gh.add_label("Bug", color="ff0000", description="the team's own")
    tracker = make()
    await tracker.create_issue("req-1", draft())
    await tracker.create_issue("req-2", draft("req-2", labels=["BUG", "priority: high"]))

    labels = {label["name"]: label for label in gh.labels}
    assert set(labels) == {"Bug", "priority: high"}  # "bug" matched "Bug": not created
    assert labels["Bug"]["color"] == "ff0000"  # a team's label keeps its look
    assert labels["priority: high"]["color"] == "e99695"
    assert labels["priority: high"]["description"] == "Priority set by triage"
    assert [i["labels"][0]["name"] for i in gh.issues] == ["Bug", "Bug"]
    assert len(gh.posts("/labels")) == 1  # the label list is cached, not re-created


async def test_in_existing_mode_unknown_labels_are_left_out_not_silently_lost(
    gh: FakeGitHub, make: Make
) -> None:
    gh.add_label("bug")
    gh.unknown_labels = "drop"  # what GitHub does for a token without push access
    metrics = Metrics()
    tracker = make(labels="existing", metrics=metrics)
    await tracker.create_issue("req-1", draft())

    (sent,) = gh.posts()
    assert sent.json["labels"] == ["bug"]
    assert gh.posts("/labels") == []
    assert dropped(metrics, "label") == 1


async def test_only_assignable_users_are_assigned(gh: FakeGitHub, make: Make) -> None:
    gh.assignable = {"alice"}
    metrics = Metrics()
    tracker = make(metrics=metrics)
    filed = await tracker.create_issue("req-1", draft(assignees=["alice", "mallory", "Alice"]))

    (sent,) = gh.posts()
    assert sent.json["assignees"] == ["alice"]  # checked, and once per login
    assert gh.issue(filed.number)["assignees"][0]["login"] == "alice"  # type: ignore[index]
    assert dropped(metrics, "assignee") == 1


async def test_the_milestone_goes_by_number_while_it_is_open(gh: FakeGitHub, make: Make) -> None:
    open_one = gh.add_milestone("v2.0")
    closed = gh.add_milestone("v1.0", state="closed")
    metrics = Metrics()
    await make(milestone=open_one).create_issue("req-1", draft())
    await make(milestone=closed, metrics=metrics).create_issue("req-2", draft("req-2"))
    await make(milestone=99).create_issue("req-3", draft("req-3"))

    sent = [r.json for r in gh.posts()]
    assert sent[0]["milestone"] == open_one
    assert "milestone" not in sent[1] and "milestone" not in sent[2]
    assert gh.issues[0]["milestone"]["title"] == "v2.0"
    assert dropped(metrics, "milestone") == 1


# --- comments -------------------------------------------------------------------------------


async def test_an_open_issue_counts_the_reports_added_to_it(gh: FakeGitHub, make: Make) -> None:
    tracker = make()
    original = await tracker.create_issue("req-1", draft())
    gh.add_issue("A pull request", pull_request=True)

    first = await tracker.open_issue(original.number)
    comment = await tracker.add_comment("req-2", original.number, "seen again")
    await tracker.add_comment("req-3", original.number, f"and again\n{marker('req-3')}")
    again = await tracker.open_issue(original.number)
    found = await tracker.find_comment("req-2", original.number)
    missing = await tracker.find_comment("req-4", original.number)

    assert first is not None and first.occurrences == 0 and first.title == "Crash on save"
    assert again is not None and again.occurrences == 2
    assert comment.comment and comment.number == original.number and comment.created
    assert "#issuecomment-" in comment.url
    assert found is not None and found.url == comment.url and not found.created
    assert missing is None
    bodies = [c["body"] for c in gh.comments(original.number)]
    assert marker("req-2") in bodies[0] and bodies[1].count(marker("req-3")) == 1
    assert await tracker.open_issue(2) is None  # a pull request is never commented on
    assert await tracker.open_issue(404) is None
    gh.close_issue(original.number)
    assert await tracker.open_issue(original.number) is None


# --- the private repository -----------------------------------------------------------------


async def test_a_repository_that_is_not_private_never_gets_a_security_report(
    gh: FakeGitHub, make: Make
) -> None:
    private = make(require_private=True)
    gh.private = False
    with pytest.raises(PermanentError, match="not private"):
        await private.create_issue("req-sec", draft("req-sec"))
    health = await private.ping()

    assert gh.issues == [] and gh.posts() == []
    assert health["status"] == "unhealthy" and "not private" in health["error"]
    gh.private = True
    assert (await make(require_private=True).create_issue("req-sec", draft("req-sec"))).number


# --- GitHub App ------------------------------------------------------------------------------


async def test_files_as_a_github_app_and_renews_a_revoked_installation_token(
    gh: FakeGitHub,
) -> None:
    private, public = app_key_pems()
    gh.configure_app(4242, public, 77)
    tracker = GitHubTracker(gh.url, gh.repository, AppAuth(gh.url, 4242, private, 77))
    try:
        await tracker.create_issue("req-1", draft())
        gh.revoke_installation_tokens()
        await tracker.create_issue("req-2", draft("req-2"))  # 401, new token, sent again
    finally:
        await tracker.close()

    exchanges = [r for r in gh.requests if r.path.endswith("/access_tokens")]
    assert len(exchanges) == 2 and len(gh.issues) == 2
    tokens = {r.headers["authorization"] for r in gh.posts()}
    assert all(t.startswith("Bearer ghs_") for t in tokens) and len(tokens) == 2
    assert not any(TOKEN in r.headers.get("authorization", "") for r in gh.requests)
