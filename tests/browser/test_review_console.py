"""The review queue: a security report held after triage is corrected and released; a
report of the security review band is settled by the maintainer who releases it."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import expect

from tests.browser.support import console, status_of, submit, wait_for
from tests.service import ServiceProcess, wait_until_terminal

pytestmark = pytest.mark.e2e

SECURITY_TITLE = "SQL injection in login form lets anyone bypass authentication"


@pytest.fixture(scope="module")
def holding_service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServiceProcess]:
    env = {"AI_PIPELINE_REVIEW_HOLD": "security"}
    with ServiceProcess(tmp_path_factory.mktemp("console-review"), env) as svc:
        yield svc


def test_a_held_security_report_is_corrected_and_released_from_the_review_page(
    holding_service: ServiceProcess, page: Any, shot: Callable[[Any, str], Path]
) -> None:
    svc = holding_service
    with svc.client() as client:
        request_id = submit(
            client,
            title=SECURITY_TITLE,
            description=(
                "Entering ' OR '1'='1 as the password logs in as the administrator: the login"
                " query concatenates user input into SQL, so anyone can read every account."
            ),
        )
        wait_for(
            lambda: status_of(client, request_id)["current_step"] == "review",
            f"request {request_id} held for review",
        )

    page.goto(console(svc, "review.html"))
    expect(page.locator("#hold-policy")).to_have_text("holding: security, security-review")
    held = page.get_by_role("article", name=SECURITY_TITLE)
    expect(held).to_be_visible()
    expect(held).to_contain_text("security")
    expect(held.get_by_role("link", name=request_id)).to_be_visible()
    shot(page, "review")

    held.get_by_label("Priority", exact=True).select_option("critical")
    labels = held.get_by_label("Labels", exact=True)
    labels.fill("")
    labels.focus()
    page.keyboard.type("security, area: authentication")
    expect(held.get_by_label("Security-sensitive", exact=False)).to_be_checked()
    held.get_by_role("button", name="Release").press("Enter")
    expect(held.get_by_role("status")).to_contain_text("Released")
    expect(held.get_by_role("button", name="Release")).to_be_disabled()
    shot(page, "review-released")

    held.get_by_role("link", name="Follow the request").click()
    expect(page.locator("#request-status")).to_have_text("completed")
    review_step = page.locator("[data-step='review']")
    expect(review_step).to_have_attribute("data-status", "completed")
    expect(page.locator("#issue-link").get_by_role("link")).to_have_text(re.compile(r"Issue #\d+"))

    with svc.client() as client:
        final = wait_until_terminal(client, [request_id], timeout=120)[request_id]
        assert final["status"] == "completed"
        issue = client.get(f"/api/v1/issues/{final['github_issue_number']}").json()
    assert "area: authentication" in issue["labels"]
    assert "critical" in issue["body"]


def test_a_release_of_a_report_no_longer_held_says_so(
    holding_service: ServiceProcess, page: Any
) -> None:
    svc = holding_service
    with svc.client() as client:
        request_id = submit(
            client,
            title="Password reset link leaks the session token to third-party sites",
            description="The reset page includes the session token in the Referer header.",
        )
        wait_for(
            lambda: status_of(client, request_id)["current_step"] == "review",
            f"request {request_id} held for review",
        )
        page.goto(console(svc, "review.html"))
        held = page.locator(f"article[data-request-id='{request_id}']")
        release = held.get_by_role("button", name="Release")
        # Focused: the page's refresh never takes away a report the user is working on.
        release.focus()
        # Someone else releases it first (through the API).
        released = client.post(f"/api/v1/reviews/{request_id}", json={})
        assert released.status_code == 202, released.text
    page.keyboard.press("Enter")
    expect(held.get_by_role("alert")).to_contain_text("no longer waits for review")
    expect(held.get_by_role("alert")).to_contain_text("INVALID_REQUEST")


def test_a_report_of_the_security_review_band_is_released_publicly_from_the_console(
    holding_service: ServiceProcess, page: Any, shot: Callable[[Any, str], Path]
) -> None:
    """Naming a vulnerability without evidence puts a report in the review band: held
    whatever AI_PIPELINE_REVIEW_HOLD says, shown with the reason, filed where the
    maintainer decides (here: cleared, so publicly)."""
    svc = holding_service
    title = "Markdown preview might allow XSS through raw HTML"
    with svc.client() as client:
        request_id = submit(
            client,
            title=title,
            description="The preview renders raw HTML, which looks like an XSS risk.",
        )
        wait_for(
            lambda: status_of(client, request_id)["current_step"] == "review",
            f"request {request_id} held for review",
        )
        triaged = status_of(client, request_id)["progress"]["triage"]["data"]
        assert triaged["security_band"] == "review", triaged

    page.goto(console(svc, "review.html"))
    held = page.get_by_role("article", name=title)
    expect(held.locator(".reasons")).to_contain_text("security-review")
    expect(held.locator("[data-field='security']")).to_contain_text(
        "mentions 'xss' → security review"
    )
    shot(page, "review-band")
    security = held.get_by_label("Security-sensitive", exact=False)
    expect(security).to_be_checked()
    security.uncheck()
    held.get_by_role("button", name="Release").press("Enter")
    expect(held.get_by_role("status")).to_contain_text("Released")

    with svc.client() as client:
        final = wait_until_terminal(client, [request_id], timeout=120)[request_id]
        assert final["status"] == "completed"
        assert final["progress"]["github"]["data"]["private"] is False
        assert final["progress"]["review"]["data"]["corrections"] == {"security_sensitive": False}
        issue = client.get(f"/api/v1/issues/{final['github_issue_number']}").json()
    assert "security" not in issue["labels"]
