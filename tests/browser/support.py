"""Helpers of the browser tests: the console's addresses, reports, waiting on the API."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from typing import Any

import httpx

from tests.conftest import REPO
from tests.service import ServiceProcess

ARTIFACTS = REPO / "build" / "test-artifacts" / "console"
# Generous: the box is slow, and the first report waits for the triage model to load.
WAIT_MS = 60_000


def console(svc: ServiceProcess, page_name: str = "") -> str:
    return f"{svc.url}/console/{page_name}"


def new_report(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": f"console-{uuid.uuid4()}",
        "title": "Editor crashes when saving a large file",
        "description": "Saving a 2 GB file makes the editor crash with a segmentation fault.",
        "reporter": "reporter@example.com",
        "steps_to_reproduce": ["Open a 2 GB file", "Press Ctrl+S"],
        "environment": {"os": "Debian 12", "version": "2.3.1"},
    }
    body.update(overrides)
    return body


def submit(client: httpx.Client, **overrides: Any) -> str:
    response = client.post("/api/v1/bug-reports", json=new_report(**overrides))
    assert response.status_code == 201, response.text
    request_id: str = response.json()["request_id"]
    return request_id


def status_of(client: httpx.Client, request_id: str) -> dict[str, Any]:
    response = client.get(f"/api/v1/requests/{request_id}/status")
    assert response.status_code == 200, response.text
    doc: dict[str, Any] = response.json()
    return doc


def wait_for(check: Callable[[], bool], what: str, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise TimeoutError(f"not within {timeout} s: {what}")
        time.sleep(0.2)
