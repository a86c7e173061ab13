"""A redrive reopens a failed request and files it, exactly once: the service in-process,
filing on the GitHub-shaped fake. A request whose issue was created before it failed gets
that issue back from the ledger, or by its marker, and nothing is created again."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from ai_pipeline.adapters.trackers.github import GitHubOptions, GitHubTracker
from ai_pipeline.api.app import create_app
from ai_pipeline.bootstrap import Container, bootstrap
from ai_pipeline.domain.models import FiledIssue
from ai_pipeline.drafting.marker import marker
from ai_pipeline.ports import FilingRecord
from ai_pipeline.redrive import plan_dead_letters, plan_requests, redrive
from tests.conftest import make_settings
from tests.factories import report_dict
from tests.fakes.github_server import OUTAGE, FakeGitHub, run_fake_github

pytestmark = pytest.mark.timeout(120)

TOKEN = "ghp_" + "redrive1tok" * 4


@pytest.fixture
def gh() -> Iterator[FakeGitHub]:
    with run_fake_github(token=TOKEN) as fake:
        yield fake


@pytest.fixture
def service(gh: FakeGitHub, tmp_path: Path) -> Iterator[tuple[TestClient, Container]]:
    # A listing lag of a second: the fake lists at once, and waits are kept short.
    options = GitHubOptions(listing_lag_seconds=1.0)
    tracker = GitHubTracker(gh.url, gh.repository, TOKEN, options=options)
    container = bootstrap(make_settings(f"sqlite:///{tmp_path / 'p.db'}"), tracker=tracker)
    with TestClient(create_app(container), raise_server_exceptions=False) as client:
        yield client, container


def wait_for(client: TestClient, rid: str, status: str) -> dict[str, Any]:
    deadline = time.monotonic() + 60
    while True:
        doc: dict[str, Any] = client.get(f"/api/v1/requests/{rid}/status").json()
        if doc["status"] == status:
            return doc
        assert time.monotonic() < deadline, doc
        time.sleep(0.05)


def refused(gh: FakeGitHub, client: TestClient) -> str:
    """A request GitHub refused (401): failed, its draft dead-lettered."""
    gh.fail_next(401, times=OUTAGE, message="Bad credentials")
    rid = str(client.post("/api/v1/bug-reports", json=report_dict()).json()["request_id"])
    assert "401" in wait_for(client, rid, "failed")["error_message"]
    gh.calm()  # the token is fixed
    return rid


def test_an_issue_created_before_the_request_failed_is_found_not_filed_again(
    gh: FakeGitHub, service: tuple[TestClient, Container]
) -> None:
    client, c = service
    rid = refused(gh, client)
    # An earlier attempt had landed, its answer lost: the ledger says pending.
    earlier = gh.add_issue("Filed before it failed", body=f"text\n{marker(rid)}")
    assert client.portal is not None
    client.portal.call(c.store.put_filing, FilingRecord(rid, "pending", None))

    plans = client.portal.call(plan_requests, c.store, [rid])
    assert client.portal.call(redrive, c.bus, c.store, plans) == 1
    doc = wait_for(client, rid, "completed")

    assert doc["github_issue_number"] == earlier["number"]
    assert gh.posts() == [] and len(gh.issues_for(rid)) == 1
    assert doc["progress"]["ticket_creation"]["status"] == "completed"  # drafted again


def test_a_request_the_ledger_knows_filed_gets_its_issue_back(
    gh: FakeGitHub, service: tuple[TestClient, Container]
) -> None:
    client, c = service
    rid = refused(gh, client)
    issue = gh.add_issue("Filed", body=f"text\n{marker(rid)}")
    filed = FiledIssue(number=issue["number"], url=issue["html_url"])
    assert client.portal is not None
    client.portal.call(c.store.put_filing, FilingRecord(rid, "filed", filed))

    plans = client.portal.call(plan_dead_letters, c.bus, c.store, "ticket-creation.dlq")
    assert [(p.request_id, p.skipped) for p in plans] == [(rid, None)]
    client.portal.call(redrive, c.bus, c.store, plans)

    assert wait_for(client, rid, "completed")["github_issue_number"] == issue["number"]
    assert gh.posts() == []


def test_a_refused_request_redriven_is_created_at_once(
    gh: FakeGitHub, service: tuple[TestClient, Container]
) -> None:
    """GitHub refused the create: nothing to look for, nothing to wait out."""
    client, c = service
    rid = refused(gh, client)
    assert client.portal is not None
    record = client.portal.call(c.store.get_filing, rid)
    assert record is not None and record.state == "refused"
    asked = len(gh.requests)

    client.portal.call(redrive, c.bus, c.store, client.portal.call(plan_requests, c.store, [rid]))

    assert wait_for(client, rid, "completed")["github_issue_number"] is not None
    lists = [r for r in gh.requests[asked:] if r.method == "GET" and r.path.endswith("/issues")]
    assert lists == [] and len(gh.posts()) == 1
