"""The request page after filing, in a real browser: the reporter answers the questions
with the token the submission gave (carried in the address's fragment), and a maintainer
closes and reopens the local issue, which the page shows as the request's resolution."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import expect

from tests.browser.support import console, new_report, status_of, wait_for
from tests.service import ServiceProcess, wait_until_terminal

pytestmark = pytest.mark.e2e


def test_the_reporter_answers_and_a_maintainer_closes_and_reopens_the_issue(
    service: ServiceProcess, page: Any, shot: Callable[[Any, str], Path]
) -> None:
    with service.client() as client:
        body = new_report(steps_to_reproduce=None, environment=None)
        accepted = client.post("/api/v1/bug-reports", json=body).json()
        rid, token = accepted["request_id"], accepted["reply_token"]
        wait_until_terminal(client, [rid], timeout=180)

        page.goto(console(service, f"request.html?id={rid}#token={token}"))
        expect(page.locator("#resolution-state")).to_have_attribute("data-state", "open")
        section = page.get_by_role("region", name="Answer the questions")
        expect(section.get_by_role("listitem")).to_have_count(4)  # steps, expected, actual, env
        assert "#token=" not in page.url  # kept for the tab, off the address bar
        shot(page, "request-questions")

        answer = page.get_by_label("Your answer", exact=False)
        answer.fill(
            "Environment: Ubuntu 24.04\nSteps to reproduce:\n1. Open a 2 GB file\n"
            "2. Press Ctrl+S\nExpected: the file is saved\nActual: the editor crashes"
        )
        page.get_by_role("button", name="Send the answer").click()
        expect(page.locator("#reply-status")).to_contain_text("Answer sent")
        wait_for(
            lambda: status_of(client, rid)["needs_info"]["answered_at"] is not None,
            "the answer recorded",
        )
        expect(section.get_by_role("listitem")).to_have_count(0, timeout=10_000)
        expect(page.locator("#questions-intro")).to_contain_text("Every question is answered")

        actions = page.get_by_role("region", name="Issue on the local tracker (maintainers)")
        actions.get_by_label("Close as").select_option("not_planned")
        actions.get_by_role("button", name="Close the issue").click()
        expect(page.locator("#resolution-state")).to_have_attribute(
            "data-state", "not_planned", timeout=20_000
        )
        expect(page.locator("#resolution")).to_contain_text("closed as not planned")
        shot(page, "request-resolved")
        actions.get_by_role("button", name="Reopen the issue").click()
        expect(page.locator("#resolution-state")).to_have_attribute(
            "data-state", "reopened", timeout=20_000
        )
        assert status_of(client, rid)["resolution"]["state"] == "reopened"


def test_a_wrong_token_is_refused_on_the_page(
    service: ServiceProcess, page: Any, shot: Callable[[Any, str], Path]
) -> None:
    with service.client() as client:
        accepted = client.post("/api/v1/bug-reports", json=new_report()).json()
        rid = accepted["request_id"]
        wait_until_terminal(client, [rid], timeout=180)
    # The service is open (no key exists), yet a token presented is checked.
    page.goto(console(service, f"request.html?id={rid}#token=rt_forged"))
    page.get_by_label("Your answer", exact=False).fill("More details")
    page.get_by_role("button", name="Send the answer").click()
    expect(page.locator("#reply-error")).to_contain_text("The answer was not sent")
    expect(page.locator("#reply-error")).to_contain_text("UNAUTHORIZED")
