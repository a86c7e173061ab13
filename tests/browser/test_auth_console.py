"""The console respects the API's keys: a refusal asks for a key, and the key then works."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import expect

from tests.browser.support import console
from tests.service import ServiceProcess

pytestmark = pytest.mark.e2e


def create_key(workdir: Path, *scopes: str) -> str:
    """``ai-pipeline keys create`` against the store the service in ``workdir`` will use."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AI_PIPELINE_")}
    env["AI_PIPELINE_STATE"] = f"sqlite:///{workdir / 'pipeline.db'}"
    scope_args = [arg for scope in scopes for arg in ("--scope", scope)]
    result = subprocess.run(
        [sys.executable, "-m", "ai_pipeline.cli", "keys", "create", "--name", "test", *scope_args],
        env=env,
        cwd=workdir,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


@pytest.fixture(scope="module")
def keys_and_service(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[dict[str, str], ServiceProcess]]:
    workdir = tmp_path_factory.mktemp("console-auth")
    keys = {scope: create_key(workdir, scope) for scope in ("admin", "submit")}
    with ServiceProcess(workdir) as svc:
        yield keys, svc


def use_key(page: Any, secret: str) -> None:
    field = page.get_by_label("API key", exact=True)
    field.focus()
    page.keyboard.type(secret)
    page.keyboard.press("Enter")


def test_a_refused_page_asks_for_a_key_and_works_once_it_is_entered(
    keys_and_service: tuple[dict[str, str], ServiceProcess],
    page: Any,
    shot: Callable[[Any, str], Path],
) -> None:
    keys, svc = keys_and_service
    page.goto(console(svc, "requests.html"))
    banner = page.locator("#auth-banner")
    expect(banner).to_have_attribute("role", "alert")
    expect(banner).to_contain_text("API key needed")
    expect(page.locator("#list-error")).to_contain_text("UNAUTHORIZED")
    shot(page, "auth-prompt")

    use_key(page, "aip_not-a-real-key")
    expect(banner).to_contain_text("not valid")

    use_key(page, keys["admin"])
    expect(banner).to_be_hidden()
    expect(page.locator("#key-state")).to_have_text("Key set for this tab.")
    expect(page.get_by_label("API key", exact=True)).to_have_value("")  # never left in the page
    expect(page.locator("#list-status")).to_contain_text("Showing active requests")

    # The key stays for the tab: a report sent through the form is followed to its issue.
    page.get_by_role("link", name="Submit", exact=True).click()
    page.get_by_label("Title (required)", exact=True).fill("Export to CSV drops the last row")
    page.get_by_label("Description (required)", exact=True).fill(
        "Exporting a table of 10 rows writes a CSV file with 9."
    )
    page.get_by_label("Your email address (required)", exact=True).fill("someone@example.com")
    page.get_by_role("button", name="Submit report").click()
    expect(page.locator("#request-status")).to_have_text("completed")
    expect(page.locator("#live-state")).to_have_text("finished (completed)")
    expect(page.locator("#issue-link").get_by_role("link")).to_have_text(re.compile(r"Issue #\d"))

    page.get_by_role("button", name="Forget key").click()
    expect(page.locator("#key-state")).to_have_text("No key set.")
    expect(page.get_by_label("API key", exact=True)).to_be_focused()


def test_a_key_without_the_needed_scope_is_told_so(
    keys_and_service: tuple[dict[str, str], ServiceProcess], page: Any
) -> None:
    keys, svc = keys_and_service
    page.goto(console(svc, "dashboard.html"))
    use_key(page, keys["submit"])
    banner = page.locator("#auth-banner")
    expect(banner).to_contain_text("Not allowed")
    expect(banner).to_contain_text("lacks the 'read' scope")
    expect(page.locator("#dashboard-error")).to_contain_text("FORBIDDEN")
