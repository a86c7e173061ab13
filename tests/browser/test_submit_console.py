"""Submit page, request page and requests list, driven by keyboard in a real browser."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import expect

from tests.browser.support import console, submit
from tests.service import ServiceProcess, wait_until_terminal

pytestmark = pytest.mark.e2e


def type_into(page: Any, label: str, text: str) -> None:
    """Focus the field its label names and type, as a keyboard user would."""
    page.get_by_label(label, exact=True).focus()
    page.keyboard.type(text)


def test_a_report_typed_into_the_form_shows_similar_reports_and_is_followed_to_its_issue(
    service: ServiceProcess, page: Any, shot: Callable[[Any, str], Path]
) -> None:
    with service.client() as client:
        earlier = submit(client, title="Editor crashes when saving a large file")
        wait_until_terminal(client, [earlier], timeout=180)

    page.goto(console(service))
    expect(page.get_by_role("heading", name="Report a bug")).to_be_visible()

    # Client-side checks: an empty form is refused with a summary that takes the focus.
    page.get_by_role("button", name="Submit report").press("Enter")
    summary = page.locator("#error-summary")
    expect(summary).to_be_focused()
    expect(summary).to_contain_text("Title: Enter a title")
    expect(page.get_by_label("Title (required)", exact=True)).to_have_attribute(
        "aria-invalid", "true"
    )

    # Similar reports appear while the title is typed.
    type_into(page, "Title (required)", "Editor crashes when saving big files")
    hints = page.get_by_role("region", name="Is it one of these?")
    expect(
        hints.get_by_role("link", name="Editor crashes when saving a large file")
    ).to_be_visible()
    expect(hints).to_contain_text("issue #")

    type_into(
        page, "Description (required)", "Saving a file of several gigabytes crashes the editor."
    )
    type_into(page, "Steps to reproduce", "Open a 3 GB file\nPress Ctrl+S")
    type_into(page, "Expected behaviour", "The file is saved")
    type_into(page, "Actual behaviour", "The editor crashes")
    type_into(page, "Operating system", "Debian 12")
    # A control character passes the page's check but not the service's: its 422 is shown
    # beside the field.
    page.get_by_label("Your email address (required)", exact=True).fill("re\x01porter@example.com")
    type_into(page, "Browser", "Chromium")
    page.keyboard.press("Tab")
    expect(page.get_by_role("button", name="Submit report")).to_be_focused()
    page.keyboard.press("Enter")
    expect(page.locator("#reporter-error")).to_contain_text("email address")
    expect(summary).to_be_focused()
    shot(page, "submit")

    reporter = page.get_by_label("Your email address (required)", exact=True)
    reporter.fill("")
    type_into(page, "Your email address (required)", "reporter@example.com")
    page.keyboard.press("Enter")  # Enter in a text field submits the form

    expect(page).to_have_url(re.compile(r"/console/request\.html\?id="))
    expect(page.locator("#request-status")).to_have_text("completed")
    issue = page.locator("#issue-link").get_by_role("link", name=re.compile(r"Issue #\d+"))
    expect(issue).to_have_attribute("href", re.compile(r"/api/v1/issues/\d+$"))
    timeline = page.get_by_role("list").filter(has=page.locator("[data-step]"))
    expect(timeline.locator("[data-step='github']")).to_have_attribute("data-status", "completed")
    expect(page.locator("#triage-facts")).to_contain_text("confidence")
    expect(page.locator("#live-state")).to_contain_text("finished (completed)")
    expect(page.locator("#live-state")).to_have_attribute("data-mode", "stream")
    shot(page, "request")


def test_the_request_page_falls_back_to_polling_when_the_event_stream_fails(
    service: ServiceProcess, page: Any
) -> None:
    page.route("**/events", lambda route: route.abort())
    with service.client() as client:
        request_id = submit(client, title="Tooltips stay on screen after the pointer leaves")
        page.goto(console(service, f"request.html?id={request_id}"))
        expect(page.locator("#live-state")).to_have_attribute("data-mode", "poll")
        expect(page.locator("#request-status")).to_have_text("completed")
        final = wait_until_terminal(client, [request_id])[request_id]
    issue = page.locator("#issue-link").get_by_role("link")
    expect(issue).to_have_text(f"Issue #{final['github_issue_number']}")
    expect(page.locator("#live-state")).to_have_text("finished (completed)")


def test_an_unknown_request_says_so_in_the_error_envelope(
    service: ServiceProcess, page: Any
) -> None:
    page.goto(console(service, "request.html?id=no-such-request"))
    error = page.locator("#request-error")
    expect(error).to_contain_text("No request with id 'no-such-request'")
    expect(error).to_contain_text("REQUEST_NOT_FOUND")
    expect(page.locator("#live-state")).to_have_text("stopped")


def test_the_requests_list_filters_by_status_and_links_to_each_request(
    service: ServiceProcess, page: Any, shot: Callable[[Any, str], Path]
) -> None:
    with service.client() as client:
        ids = [submit(client, title=f"Print preview shows blank page {n}") for n in range(3)]
        wait_until_terminal(client, ids, timeout=180)

    page.goto(console(service, "requests.html"))
    page.get_by_label("Status", exact=True).select_option("completed")
    expect(page).to_have_url(re.compile(r"status=completed"))
    table = page.get_by_role("table", name=re.compile("Requests \\(completed\\)"))
    for request_id in ids:
        expect(table.get_by_role("link", name=request_id)).to_be_visible()
    expect(table).to_contain_text("completed")
    shot(page, "requests")

    page.get_by_label("Status", exact=True).select_option("failed")
    expect(page.get_by_role("table", name=re.compile(r"Requests \(failed\)"))).to_contain_text(
        "No requests."
    )
    page.go_back()
    expect(page.get_by_label("Status", exact=True)).to_have_value("completed")
    table.get_by_role("link", name=ids[0]).click()
    expect(page.locator("#request-status")).to_have_text("completed")
