"""A create or a comment whose outcome is unknown is never filed twice: the tracker agent
checks GitHub several times over its listing lag before creating again, lists only its own
issues since the attempt (all pages), and two tracker processes never create for one request
at once (a lease on the ledger's pending entry). Real HTTP against the GitHub-shaped fake,
the ledger in both stores."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import pytest

from ai_pipeline.adapters.trackers.github import GitHubTracker
from ai_pipeline.agents.tracker import TrackerAgent
from ai_pipeline.domain.errors import UnavailableError
from ai_pipeline.domain.events import IssueDrafted, Step, StepChanged, StepStatus, decode, utcnow
from ai_pipeline.domain.models import IssueDraft
from ai_pipeline.domain.request_state import new_request
from ai_pipeline.drafting.marker import marker
from ai_pipeline.observability.metrics import Metrics
from ai_pipeline.ports import FilingRecord, StateStore
from tests.factories import report
from tests.fakes.github_server import FakeGitHub, run_fake_github

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(120)]

TOKEN = "ghp_RECONCILEtoken0123456789abcdefXY"


@pytest.fixture(scope="module")
def server() -> Any:
    with run_fake_github(token=TOKEN) as gh:
        yield gh


@pytest.fixture
def gh(server: FakeGitHub) -> FakeGitHub:
    server.reset()
    for label in ("bug",):  # so the only POST a filing makes is the issue's
        server.add_label(label)
    return server


@pytest.fixture
async def trackers(gh: FakeGitHub) -> AsyncIterator[list[GitHubTracker]]:
    """Trackers made by ``tracker()``; each stands for another process's."""
    made: list[GitHubTracker] = []
    yield made
    for tracker in made:
        await tracker.close()


def github(gh: FakeGitHub, made: list[GitHubTracker], timeout: float = 5.0) -> GitHubTracker:
    tracker = GitHubTracker(gh.url, gh.repository, TOKEN, timeout=timeout)
    made.append(tracker)
    return tracker


async def drafted(store: StateStore, request_id: str, **changes: Any) -> IssueDrafted:
    """A request drafted a minute ago, as the ticket-creation agent leaves it."""
    r = report()
    at = utcnow() - timedelta(minutes=1)
    await store.create_request(new_request(request_id, r.id, at), r, None)
    draft_done = StepChanged(
        request_id=request_id, step=Step.TICKET_CREATION, status=StepStatus.COMPLETED, at=at
    )
    await store.apply(draft_done)
    draft = IssueDraft(title=r.title, body=f"text\n{marker(request_id)}", labels=["bug"])
    return IssueDrafted(request_id=request_id, bug_report_id=r.id, draft=draft, **changes)


async def handle_until_done(agent: TrackerAgent, event: IssueDrafted, timeout: float = 90) -> Any:
    """What the runner does: an outage or a wait hands the message back, and it comes again
    after the wait the error asked for (shortened, to keep the test brief)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            (message,) = await agent.handle(event)
        except UnavailableError as exc:
            assert time.monotonic() < deadline, f"never filed: {exc}"
            await asyncio.sleep(min(exc.retry_after or 0.2, 1.0))
            continue
        changed = decode(message.value)
        assert isinstance(changed, StepChanged) and changed.issue is not None
        return changed.issue


async def test_a_create_whose_answer_was_lost_is_found_despite_githubs_listing_lag(
    gh: FakeGitHub, store: StateStore, trackers: list[GitHubTracker]
) -> None:
    """The create is stored, its answer lost (the client times out), and GitHub lists the
    new issue only seconds later: checking once and creating again would file it twice."""
    gh.list_lag = 3.0
    gh.delay_next(seconds=2.0, method="POST")
    agent = TrackerAgent(github(gh, trackers, timeout=0.5), store, Metrics())
    event = await drafted(store, "req-lag")

    issue = await handle_until_done(agent, event)

    filed = gh.issues_for("req-lag")
    assert len(filed) == 1, [i["number"] for i in filed]
    assert issue.number == filed[0]["number"]
    assert len(gh.posts()) == 1
    record = await store.get_filing("req-lag")
    assert record is not None and record.state == "filed"


async def test_two_tracker_processes_never_create_for_one_request_at_once(
    gh: FakeGitHub, store: StateStore, trackers: list[GitHubTracker]
) -> None:
    """A consumer that loses its partition mid-call: the new owner gets the same draft while
    the first one's create is still in flight. It waits for the lease instead of creating."""
    gh.delay_next(seconds=2.0, method="POST")  # a slow create: answered, but late
    gh.list_lag = 3.0  # and not yet listed when the second one looks
    first = TrackerAgent(github(gh, trackers), store, Metrics())
    second = TrackerAgent(github(gh, trackers), store, Metrics())
    event = await drafted(store, "req-race")

    one, two = await asyncio.gather(
        handle_until_done(first, event), handle_until_done(second, event)
    )

    assert len(gh.issues_for("req-race")) == 1
    assert len(gh.posts()) == 1
    assert one.number == two.number


async def test_an_earlier_issue_is_found_behind_more_than_300_newer_ones(
    gh: FakeGitHub, store: StateStore, trackers: list[GitHubTracker]
) -> None:
    """Created, answer lost, then 350 issues and pull requests opened by others before the
    retry: only our own issues since the draft are listed, every page of them."""
    event = await drafted(store, "req-buried")
    ours = gh.add_issue("Ours", body=f"text\n{marker('req-buried')}")
    for n in range(350):
        gh.add_issue(f"Theirs {n}", body="text", user="octocat", pull_request=n % 2 == 0)
    await store.put_filing(FilingRecord("req-buried", "pending", None))
    agent = TrackerAgent(github(gh, trackers), store, Metrics())

    issue = await handle_until_done(agent, event)

    assert issue.number == ours["number"] and not issue.created
    assert gh.posts() == []
    assert len(gh.issues_for("req-buried")) == 1


async def test_a_comment_behind_a_thousand_others_is_found_not_posted_again(
    gh: FakeGitHub, store: StateStore, trackers: list[GitHubTracker]
) -> None:
    """Comment mode on a busy issue: the report's comment went in (answer lost) after a
    thousand others; it is found on page 11, not posted a second time."""
    original = gh.add_issue("The original", body="text")["number"]
    gh.add_comments(original, [f"me too {n}" for n in range(1030)])
    event = await drafted(
        store,
        "req-busy",
        duplicate_of_issue=original,
        occurrence=f"seen again\n{marker('req-busy')}",
    )
    gh.add_comments(original, [f"seen again\n{marker('req-busy')}"])
    gh.add_comments(original, [f"later {n}" for n in range(20)])
    await store.put_filing(FilingRecord("req-busy", "pending", None))
    agent = TrackerAgent(github(gh, trackers), store, Metrics(), duplicates="comment")

    issue = await handle_until_done(agent, event)

    mine = [c for c in gh.comments(original) if marker("req-busy") in c["body"]]
    assert len(mine) == 1
    assert issue.comment and issue.number == original and issue.url == mine[0]["html_url"]
    assert gh.posts("/comments") == []
