"""GitHubTracker against a fake GitHub over real HTTP."""

from __future__ import annotations

import socket
import time
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from ai_pipeline.adapters.trackers.github import GitHubOptions, GitHubTracker
from ai_pipeline.adapters.trackers.github_auth import AppAuth
from ai_pipeline.adapters.trackers.github_pacing import RateGate
from ai_pipeline.domain.errors import PermanentError, TransientError, UnavailableError
from ai_pipeline.domain.models import IssueDraft
from ai_pipeline.drafting.marker import marker
from ai_pipeline.observability.metrics import Metrics
from tests.factories import app_key_pems
from tests.fakes.github_server import (
    APP_SLUG,
    TOKEN_LOGIN,
    FakeGitHub,
    RecordedRequest,
    run_fake_github,
)

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(30)]

TOKEN = "ghp_FAKEtoken0123456789abcdefSECRETxyz"
REQUEST_ID = "req-42"
LABELS = ["bug", "priority: high"]


@pytest.fixture(scope="module")
def github_server() -> Iterator[FakeGitHub]:
    with run_fake_github(token=TOKEN) as gh:
        yield gh


@pytest.fixture
def gh(github_server: FakeGitHub) -> FakeGitHub:
    github_server.reset()
    for label in LABELS:  # so the only POST a filing makes is the issue's
        github_server.add_label(label)
    return github_server


@pytest.fixture
async def tracker(gh: FakeGitHub) -> AsyncIterator[GitHubTracker]:
    tracker = GitHubTracker(api_url=gh.url, repository=gh.repository, token=TOKEN, timeout=5.0)
    yield tracker
    await tracker.close()


def draft(request_id: str = REQUEST_ID, **changes: object) -> IssueDraft:
    fields: dict[str, object] = {
        "title": "Crash on save",
        "body": f"## Summary\nIt crashes.\n\n---\n{marker(request_id)}\n",
        "labels": ["bug", "priority: high"],
        "assignees": ["octocat"],
    }
    return IssueDraft.model_validate(fields | changes)


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


# --- filing ------------------------------------------------------------------------------


async def test_files_the_draft_with_the_payload_and_headers_github_expects(
    gh: FakeGitHub, tracker: GitHubTracker
) -> None:
    filed = await tracker.create_issue(REQUEST_ID, draft())

    stored = gh.issues
    assert len(stored) == 1
    assert filed.number == stored[0]["number"] == 1
    assert filed.url == stored[0]["html_url"] == f"{gh.web_url}/acme/widgets/issues/1"
    assert (filed.title, filed.created) == ("Crash on save", True)
    assert [label["name"] for label in stored[0]["labels"]] == ["bug", "priority: high"]
    checks, (sent,) = [r for r in gh.requests if r.method == "GET"], gh.posts()
    assert [r.path for r in checks] == [
        "/repos/acme/widgets/labels",
        "/repos/acme/widgets/assignees/octocat",
    ]
    assert (sent.method, sent.path) == ("POST", "/repos/acme/widgets/issues")
    assert sent.json == {
        "title": "Crash on save",
        "body": draft().body,
        "labels": ["bug", "priority: high"],
        "assignees": ["octocat"],
    }
    assert sent.headers["authorization"] == f"Bearer {TOKEN}"
    assert sent.headers["accept"] == "application/vnd.github+json, application/json;q=0.9"
    assert sent.headers["x-github-api-version"] == "2022-11-28"
    assert sent.headers["user-agent"].startswith("ai-pipeline")


async def test_adds_the_marker_when_a_draft_lacks_it_so_the_issue_can_be_found_again(
    gh: FakeGitHub, tracker: GitHubTracker
) -> None:
    await tracker.create_issue(REQUEST_ID, draft(body="No marker here."))

    assert gh.issues[0]["body"].startswith("No marker here.")
    assert len(gh.issues_for(REQUEST_ID)) == 1


async def test_works_under_an_enterprise_server_api_path() -> None:
    with run_fake_github(token=TOKEN, repository="team/app", prefix="/api/v3") as ghes:
        tracker = GitHubTracker(api_url=ghes.url + "/", repository="team/app", token=TOKEN)
        try:
            filed = await tracker.create_issue(REQUEST_ID, draft())
            found = await tracker.find_filed(REQUEST_ID)
            health = await tracker.ping()
        finally:
            await tracker.close()

    assert ghes.url.endswith("/api/v3")
    assert found is not None and found.number == filed.number
    assert health["status"] == "healthy"
    assert all(r.path.startswith(("/repos/team/app", "/user")) for r in ghes.requests)
    assert [r.path for r in ghes.requests if r.path.endswith(("/issues", "/app", "/user"))] == [
        "/repos/team/app/issues",
        "/user",
        "/repos/team/app/issues",
        "/repos/team/app",
    ]


# --- reconciliation ----------------------------------------------------------------------


async def test_find_filed_finds_an_old_issue_on_a_later_page(
    gh: FakeGitHub, tracker: GitHubTracker
) -> None:
    for n in range(1, 251):
        request_id = REQUEST_ID if n == 5 else f"other-{n}"
        gh.add_issue(f"Issue {n}", body=f"text\n{marker(request_id)}\n")

    found = await tracker.find_filed(REQUEST_ID)

    assert found is not None
    assert (found.number, found.title, found.created) == (5, "Issue 5", False)
    assert found.url.endswith("/acme/widgets/issues/5")
    asked = [r.query for r in listed(gh)]
    assert [q["page"] for q in asked] == ["1", "2", "3"]
    assert all(
        q | {"page": "-"}
        == {
            "state": "all",
            "sort": "created",
            "direction": "desc",
            "per_page": "100",
            "page": "-",
            "creator": TOKEN_LOGIN,
        }
        for q in asked
    )


async def test_find_filed_gives_up_after_the_configured_number_of_pages(
    gh: FakeGitHub,
) -> None:
    gh.add_issue("The old one", body=marker(REQUEST_ID))
    for n in range(200):
        gh.add_issue(f"Newer {n}", body=marker(f"other-{n}"))
    tracker = GitHubTracker(gh.url, gh.repository, TOKEN, reconcile_pages=2)
    try:
        assert await tracker.find_filed(REQUEST_ID) is None
    finally:
        await tracker.close()

    assert len(listed(gh)) == 2


async def test_find_filed_ignores_pull_requests_and_other_requests_markers(
    gh: FakeGitHub, tracker: GitHubTracker
) -> None:
    gh.add_issue("Ours", body=f"```\n{marker('spoofed')}\n```\n{marker(REQUEST_ID)}")
    gh.add_issue("Look-alike", body=marker(REQUEST_ID + "0"))
    gh.add_issue("Someone else's", body=marker("req-7"))
    gh.add_issue("Closed, no body", body=None, state="closed")
    gh.add_issue("A pull request", body=marker(REQUEST_ID), pull_request=True)

    found = await tracker.find_filed(REQUEST_ID)

    assert found is not None and (found.number, found.title) == (1, "Ours")


async def test_find_filed_returns_none_after_one_short_page(
    gh: FakeGitHub, tracker: GitHubTracker
) -> None:
    for n in range(3):
        gh.add_issue(body=marker(f"other-{n}"))

    assert await tracker.find_filed(REQUEST_ID) is None
    assert len(listed(gh)) == 1


def listed(gh: FakeGitHub) -> list[RecordedRequest]:
    return [r for r in gh.requests if r.method == "GET" and r.path.endswith("/issues")]


async def test_find_filed_since_an_attempt_reads_every_page_of_our_own_issues(
    gh: FakeGitHub, tracker: GitHubTracker
) -> None:
    """Bounded by ``since``, nothing stops the search early: an attempt followed by 500
    issues of ours is still found, and issues of others are never even listed."""
    since = datetime.now(UTC) - timedelta(minutes=1)
    gh.add_issue("Ours", body=marker(REQUEST_ID))
    for n in range(500):
        gh.add_issue(f"Newer {n}", body=marker(f"other-{n}"))
        gh.add_issue(f"Theirs {n}", body=marker(REQUEST_ID), user="octocat")

    found = await tracker.find_filed(REQUEST_ID, since)

    assert found is not None and found.title == "Ours"
    asked = [r.query for r in listed(gh)]
    assert [q["page"] for q in asked] == ["1", "2", "3", "4", "5", "6"]
    assert {q["creator"] for q in asked} == {TOKEN_LOGIN}
    assert {q["since"] for q in asked} == {since.strftime("%Y-%m-%dT%H:%M:%SZ")}
    assert [r.path for r in gh.requests].count("/user") == 1  # asked once, then known


async def test_without_a_login_the_search_lists_every_creators_issues(gh: FakeGitHub) -> None:
    """A token GitHub will not name (403 on GET /user) files all the same."""
    gh.fail_next(403, message="Resource not accessible by integration", method="GET")
    gh.add_issue("Ours, opened by a person", body=marker(REQUEST_ID), user="octocat")
    tracker = GitHubTracker(gh.url, gh.repository, TOKEN)
    try:
        found = await tracker.find_filed(REQUEST_ID)
    finally:
        await tracker.close()

    assert found is not None
    assert "creator" not in listed(gh)[0].query


async def test_an_apps_issues_are_looked_for_as_its_bot(gh: FakeGitHub) -> None:
    private, public = app_key_pems()
    gh.configure_app(4242, public, 77)
    tracker = GitHubTracker(gh.url, gh.repository, AppAuth(gh.url, 4242, private, 77))
    try:
        filed = await tracker.create_issue(REQUEST_ID, draft(assignees=[]))
        found = await tracker.find_filed(REQUEST_ID)
    finally:
        await tracker.close()

    assert found is not None and found.number == filed.number
    assert listed(gh)[0].query["creator"] == f"{APP_SLUG}[bot]"
    assert "/user" not in [r.path for r in gh.requests]


async def test_find_comment_reads_every_page_of_our_comments_since(
    gh: FakeGitHub, tracker: GitHubTracker
) -> None:
    number = gh.add_issue("Busy")["number"]
    gh.add_comments(number, [f"me too {n}" for n in range(1200)])
    gh.add_comments(number, [f"quoted\n{marker(REQUEST_ID)}"], user="octocat")
    gh.add_comments(number, [f"seen again\n{marker(REQUEST_ID)}"])
    since = datetime.now(UTC) - timedelta(minutes=1)

    found = await tracker.find_comment(REQUEST_ID, number, since)
    opened = await tracker.open_issue(number)

    assert found is not None and found.url == gh.comments(number)[-1]["html_url"]
    comment_lists = [r.query for r in gh.requests if r.path.endswith("/comments")]
    assert comment_lists[0]["since"] == since.strftime("%Y-%m-%dT%H:%M:%SZ")
    assert len(comment_lists) == 2 * 13  # 1,202 comments: 13 pages, twice
    assert opened is not None and opened.occurrences == 1  # ours only, not the quote


# --- error mapping -----------------------------------------------------------------------

TRANSIENT: dict[str, tuple[Callable[[FakeGitHub], None], float | None, str]] = {
    "500": (lambda gh: gh.fail_next(500, method="POST"), None, "500 Internal Server Error"),
    "502": (lambda gh: gh.fail_next(502, method="POST"), None, "502 Bad Gateway"),
    "503 with Retry-After": (
        lambda gh: gh.fail_next(503, retry_after=30, method="POST"),
        30,
        "503",
    ),
    "429 with Retry-After": (
        lambda gh: gh.fail_next(429, retry_after=7, method="POST"),
        7,
        "secondary rate limit",
    ),
    "403 secondary limit": (
        lambda gh: gh.rate_limit_next(retry_after=42, method="POST"),
        42,
        "secondary rate limit",
    ),
    "403 secondary limit, no header": (
        lambda gh: gh.rate_limit_next(retry_after=None, method="POST"),
        60,
        "secondary rate limit",
    ),
    "403 primary limit": (
        lambda gh: gh.rate_limit_next(primary=True, reset_in=120, method="POST"),
        120,
        "primary rate limit",
    ),
}


@pytest.mark.parametrize("case", TRANSIENT, ids=list(TRANSIENT))
async def test_outages_and_long_rate_limits_hand_the_report_back_with_the_wait(
    gh: FakeGitHub, case: str
) -> None:
    """UnavailableError: the runner redelivers later without spending an attempt."""
    inject, retry_after, text = TRANSIENT[case]
    inject(gh)
    tracker = GitHubTracker(gh.url, gh.repository, TOKEN, options=GitHubOptions(max_wait_seconds=1))
    try:
        with pytest.raises(UnavailableError) as raised:
            await tracker.create_issue(REQUEST_ID, draft())
    finally:
        await tracker.close()

    assert text in str(raised.value)
    if retry_after is None:
        assert raised.value.retry_after is None
    else:
        # The primary limit's reset is a whole-second epoch: allow for rounding and elapsed time.
        assert raised.value.retry_after == pytest.approx(retry_after, abs=2)
    assert gh.issues == []


async def test_a_closed_gate_refuses_at_once_without_asking_github(gh: FakeGitHub) -> None:
    gh.rate_limit_next(retry_after=42, method="POST")
    tracker = GitHubTracker(gh.url, gh.repository, TOKEN, options=GitHubOptions(max_wait_seconds=1))
    try:
        with pytest.raises(UnavailableError):
            await tracker.create_issue(REQUEST_ID, draft())
        asked = len(gh.requests)
        with pytest.raises(UnavailableError, match="rate limit") as raised:
            await tracker.create_issue(REQUEST_ID, draft())
    finally:
        await tracker.close()

    assert len(gh.requests) == asked  # GitHub said 42 s: nothing is sent before then
    assert raised.value.retry_after == pytest.approx(42, abs=2)


@pytest.mark.parametrize("status", [403, 429])
async def test_a_short_rate_limit_is_waited_out_and_the_issue_filed(
    gh: FakeGitHub, status: int
) -> None:
    if status == 403:
        gh.rate_limit_next(retry_after=1, method="POST")
    else:
        gh.fail_next(429, retry_after=1, method="POST")
    metrics = Metrics()
    tracker = GitHubTracker(gh.url, gh.repository, TOKEN, metrics=metrics)
    try:
        filed = await tracker.create_issue(REQUEST_ID, draft())
    finally:
        await tracker.close()

    assert filed.number == 1 and len(gh.issues) == 1
    assert len(gh.posts()) == 2  # refused once, then sent again once
    waits = metrics.registry.get_sample_value(
        "ai_pipeline_tracker_rate_limit_waits_total", {"tracker": "github", "reason": "secondary"}
    )
    assert waits == 1


async def test_content_creation_is_paced_by_the_gate(gh: FakeGitHub) -> None:
    """Past the per-minute allowance the next create waits (here: hands back, as the wait
    exceeds the in-place maximum) instead of being sent and refused."""
    gate = RateGate(creations_per_minute=2, creations_per_hour=500)
    options = GitHubOptions(max_wait_seconds=5)
    tracker = GitHubTracker(gh.url, gh.repository, TOKEN, options=options, gate=gate)
    try:
        for n in range(2):
            await tracker.create_issue(f"req-{n}", draft(f"req-{n}"))
        with pytest.raises(UnavailableError, match="pacing") as raised:
            await tracker.create_issue("req-2", draft("req-2"))
    finally:
        await tracker.close()

    assert len(gh.issues) == 2 and len(gh.posts()) == 2
    assert raised.value.retry_after is not None and 50 < raised.value.retry_after <= 60


async def test_a_5xx_on_create_says_the_outcome_is_unknown_but_not_on_a_read(
    gh: FakeGitHub, tracker: GitHubTracker
) -> None:
    await tracker._labels()  # cached: the first 502 meets the create, not the label check
    gh.fail_next(502, times=2)

    with pytest.raises(TransientError, match="outcome is unknown"):
        await tracker.create_issue(REQUEST_ID, draft(assignees=[]))
    with pytest.raises(TransientError) as raised:
        await tracker.find_filed(REQUEST_ID)

    assert "outcome" not in str(raised.value)


PERMANENT: dict[str, tuple[Callable[[FakeGitHub], None], str]] = {
    "422 validation": (
        lambda gh: gh.validation_error_next("labels", "invalid", value=["nope"]),
        'GitHub refused the issue (422 Validation Failed: labels invalid (["nope"]))',
    ),
    "422 custom message": (
        lambda gh: gh.fail_next(
            422,
            message="Validation Failed",
            errors=[{"message": "body is too long"}],
            method="POST",
        ),
        "(422 Validation Failed: body is too long)",
    ),
    "401": (
        lambda gh: gh.fail_next(401, message="Bad credentials", method="POST"),
        "401 Bad credentials",
    ),
    "403 forbidden": (
        lambda gh: gh.fail_next(
            403, message="Resource not accessible by integration", method="POST"
        ),
        "403 Resource not accessible by integration",
    ),
    "404": (lambda gh: gh.fail_next(404, message="Not Found", method="POST"), "does not exist"),
    "410": (
        lambda gh: gh.fail_next(410, message="Issues are disabled", method="POST"),
        "410 Issues are disabled",
    ),
    "301": (
        lambda gh: gh.fail_next(
            301, headers={"Location": "https://elsewhere.example/x"}, method="POST"
        ),
        "redirected (301) to https://elsewhere.example/x",
    ),
}


@pytest.mark.parametrize("case", PERMANENT, ids=list(PERMANENT))
async def test_refusals_are_permanent_with_githubs_own_words(
    gh: FakeGitHub, tracker: GitHubTracker, case: str
) -> None:
    inject, text = PERMANENT[case]
    inject(gh)

    with pytest.raises(PermanentError) as raised:
        await tracker.create_issue(REQUEST_ID, draft())

    assert text in str(raised.value)
    assert gh.issues == []


async def test_a_wrong_token_and_a_wrong_repository_are_permanent(gh: FakeGitHub) -> None:
    wrong_token = GitHubTracker(gh.url, gh.repository, "ghp_someOtherToken123456")
    wrong_repo = GitHubTracker(gh.url, "acme/nothing-here", TOKEN)
    try:
        with pytest.raises(PermanentError, match="401 Bad credentials"):
            await wrong_token.create_issue(REQUEST_ID, draft())
        with pytest.raises(PermanentError, match="acme/nothing-here does not exist"):
            await wrong_repo.create_issue(REQUEST_ID, draft())
    finally:
        await wrong_token.close()
        await wrong_repo.close()


async def test_faults_last_for_the_requested_number_of_calls(
    gh: FakeGitHub, tracker: GitHubTracker
) -> None:
    gh.fail_next(500, times=2, method="POST")

    for _ in range(2):
        with pytest.raises(TransientError):
            await tracker.create_issue(REQUEST_ID, draft())
    assert await tracker.find_filed(REQUEST_ID) is None  # a GET is not affected
    filed = await tracker.create_issue(REQUEST_ID, draft())

    assert filed.number == 1 and len(gh.issues) == 1


async def test_an_unreachable_github_is_transient_and_nothing_was_sent() -> None:
    tracker = GitHubTracker(f"http://127.0.0.1:{closed_port()}", "acme/widgets", TOKEN)
    try:
        with pytest.raises(TransientError, match="could not reach GitHub") as raised:
            await tracker.create_issue(REQUEST_ID, draft())
    finally:
        await tracker.close()

    assert "outcome" not in str(raised.value)


# --- unknown outcome ---------------------------------------------------------------------


async def test_a_timeout_after_github_stored_the_issue_is_resolved_by_find_filed(
    gh: FakeGitHub,
) -> None:
    tracker = GitHubTracker(gh.url, gh.repository, TOKEN, timeout=0.3)
    gh.delay_next(seconds=3.0, method="POST")
    try:
        started = time.monotonic()
        with pytest.raises(TransientError, match="outcome is unknown"):
            await tracker.create_issue(REQUEST_ID, draft())
        assert time.monotonic() - started < 2.0  # the client's timeout, not the server's delay

        found = await tracker.find_filed(REQUEST_ID)
    finally:
        await tracker.close()

    assert len(gh.issues) == 1
    assert found is not None and (found.number, found.created) == (1, False)


async def test_a_timeout_on_a_read_is_transient_without_an_unknown_outcome(
    gh: FakeGitHub,
) -> None:
    tracker = GitHubTracker(gh.url, gh.repository, TOKEN, timeout=0.3)
    gh.delay_next(seconds=3.0, method="GET")
    try:
        with pytest.raises(TransientError, match="no answer from GitHub") as raised:
            await tracker.find_filed(REQUEST_ID)
    finally:
        await tracker.close()

    assert "outcome" not in str(raised.value)


# --- ping and lifecycle ------------------------------------------------------------------


async def test_ping_reports_healthy(gh: FakeGitHub, tracker: GitHubTracker) -> None:
    assert await tracker.ping() == {
        "status": "healthy",
        "backend": "github",
        "repository": "acme/widgets",
        "api_url": gh.url,
    }
    assert gh.requests[-1].path == "/repos/acme/widgets"


async def test_ping_reports_unhealthy_without_raising(gh: FakeGitHub) -> None:
    wrong_token = GitHubTracker(gh.url, gh.repository, "ghp_someOtherToken123456")
    unreachable = GitHubTracker(f"http://127.0.0.1:{closed_port()}", gh.repository, TOKEN)
    disabled = GitHubTracker(gh.url, gh.repository, TOKEN)
    try:
        bad_token = await wrong_token.ping()
        down = await unreachable.ping()
        gh.has_issues = False
        no_issues = await disabled.ping()
    finally:
        for tracker in (wrong_token, unreachable, disabled):
            await tracker.close()

    assert {bad_token["status"], down["status"], no_issues["status"]} == {"unhealthy"}
    assert "401 Bad credentials" in bad_token["error"]
    assert "could not reach GitHub" in down["error"]
    assert "issues are disabled" in no_issues["error"]
    assert "someOtherToken" not in str(bad_token)


async def test_close_leaves_a_shared_client_open(gh: FakeGitHub) -> None:
    async with httpx.AsyncClient() as client:
        shared = GitHubTracker(gh.url, gh.repository, TOKEN, client=client)
        await shared.create_issue(REQUEST_ID, draft())
        await shared.close()
        assert not client.is_closed
    assert gh.requests[0].headers["authorization"] == f"Bearer {TOKEN}"


# --- secrets and configuration -----------------------------------------------------------


async def test_the_token_appears_in_no_error_and_no_repr(gh: FakeGitHub) -> None:
    options = GitHubOptions(max_wait_seconds=1)
    unreachable = GitHubTracker(f"http://127.0.0.1:{closed_port()}", gh.repository, TOKEN)
    failures: list[Exception] = []
    scenarios: list[Callable[[], None]] = [
        lambda: gh.fail_next(500),
        lambda: gh.rate_limit_next(),
        lambda: gh.validation_error_next(),
        # A server echoing the token back must not get it into our messages either.
        lambda: gh.fail_next(422, message=f"token {TOKEN} is odd", errors=[TOKEN]),
        lambda: gh.delay_next(3.0),
    ]
    try:
        for inject in scenarios:
            inject()
            tracker = GitHubTracker(gh.url, gh.repository, TOKEN, timeout=0.3, options=options)
            with pytest.raises((TransientError, PermanentError)) as raised:
                await tracker.create_issue(REQUEST_ID, draft())
            failures.append(raised.value)
            await tracker.close()
        with pytest.raises(TransientError) as raised:
            await unreachable.create_issue(REQUEST_ID, draft())
        failures.append(raised.value)
    finally:
        await unreachable.close()

    assert len(failures) == len(scenarios) + 1
    for failure in failures:
        assert TOKEN not in str(failure) and TOKEN not in repr(failure)
    assert "[redacted]" in str(failures[3])
    assert TOKEN not in repr(tracker) and TOKEN not in str(tracker)


@pytest.mark.parametrize(
    "repository", ["", "acme", "acme/", "/widgets", "a/b/c", "acme/..", "a b/c"]
)
def test_the_repository_must_be_owner_slash_name(repository: str) -> None:
    with pytest.raises(ValueError, match="owner/name"):
        GitHubTracker("https://api.github.com", repository, TOKEN)


def test_a_token_that_cannot_go_in_a_header_is_refused_without_echoing_it() -> None:
    with pytest.raises(ValueError) as raised:
        GitHubTracker("https://api.github.com", "acme/widgets", "ghp_secret with space")

    assert "secret" not in str(raised.value)


@pytest.mark.parametrize("api_url", ["api.github.com", "ftp://host/api", "https://u:p@host/api"])
def test_the_api_url_must_be_a_plain_http_url(api_url: str) -> None:
    with pytest.raises(ValueError, match="api_url"):
        GitHubTracker(api_url, "acme/widgets", TOKEN)
