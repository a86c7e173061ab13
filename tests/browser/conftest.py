"""The web console in a real browser: Playwright's sync API driving Debian's chromium (found
on PATH, never downloaded) against the real service started by ``tests.service``.

Every page a test visits can be saved with ``shot(page, name)`` to
``build/test-artifacts/console/<name>.png`` (full page), the path printed."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.browser.support import ARTIFACTS, WAIT_MS
from tests.conftest import REPO, require_tool
from tests.service import ServiceProcess


@pytest.fixture(scope="session")
def chromium() -> str:
    return require_tool("chromium")


@pytest.fixture(scope="module")
def browser(chromium: str) -> Iterator[Any]:
    """Per module, not per session: Playwright's sync API keeps an event loop running on
    the main thread until it stops, and every asyncio test after it would then fail
    ("Cannot run the event loop while another loop is running")."""
    from playwright.sync_api import sync_playwright

    # Root cannot use chromium's sandbox (a container's usual user); an ordinary user keeps it.
    args = ["--no-sandbox"] if os.geteuid() == 0 else []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=chromium, headless=True, args=[*args, "--disable-dev-shm-usage"]
        )
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    """A fresh context (its own sessionStorage) and page; a script error on it fails the test."""
    from playwright.sync_api import expect

    expect.set_options(timeout=WAIT_MS)
    # The console is served with a strict Content-Security-Policy, which also forbids the
    # string evaluation Playwright's polling probes use; the CSP test opens its own page
    # without this bypass.
    context = browser.new_context(viewport={"width": 1280, "height": 900}, bypass_csp=True)
    context.set_default_timeout(WAIT_MS)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    try:
        yield page
    finally:
        context.close()
    assert not errors, f"script errors on the page: {errors}"


@pytest.fixture(scope="session")
def shot() -> Callable[[Any, str], Path]:
    def save(page: Any, name: str) -> Path:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        path = ARTIFACTS / f"{name}.png"
        page.screenshot(path=str(path), full_page=True)
        print(f"screenshot: {path.relative_to(REPO)}")
        return path

    return save


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServiceProcess]:
    """The embedded default (SQLite, local tracker, local triage), shared by a module."""
    with ServiceProcess(tmp_path_factory.mktemp("console")) as svc:
        yield svc
