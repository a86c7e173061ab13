"""Live event streams over real HTTP (``ai-pipeline serve``): a key may hold only so many
open at once, and an open stream spends the key's hourly reads as it lasts. The streams
follow a report held for review, which stays open as long as nobody releases it."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import httpx
import pytest

from tests.factories import report_dict
from tests.integration.test_console_api import XSS
from tests.service import ServiceProcess

pytestmark = pytest.mark.e2e


@pytest.fixture
def service(tmp_path: Path) -> Iterator[ServiceProcess]:
    env = {
        "AI_PIPELINE_REVIEW_HOLD": "security",
        "AI_PIPELINE_AUTH": "required",
        "AI_PIPELINE_AUTH_CACHE_SECONDS": "0",
        "AI_PIPELINE_MAX_STREAMS_PER_KEY": "2",
        "AI_PIPELINE_STREAM_CHARGE_SECONDS": "0.3",
    }
    with ServiceProcess(tmp_path, env) as svc:
        yield svc


def new_key(service: ServiceProcess, *args: str) -> str:
    created = subprocess.run(
        [sys.executable, "-m", "ai_pipeline.cli", "keys", "create", "--name", "t", *args],
        env=service.env,
        cwd=service.workdir,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return created.stdout.strip()


def held_request(service: ServiceProcess, admin: str) -> str:
    with httpx.Client(base_url=service.url, headers={"X-API-Key": admin}, timeout=30) as client:
        rid: str = client.post("/api/v1/bug-reports", json=report_dict(**XSS)).json()["request_id"]
        deadline = time.monotonic() + 60
        while client.get(f"/api/v1/requests/{rid}/status").json()["current_step"] != "review":
            assert time.monotonic() < deadline, "never held"
            time.sleep(0.1)
    return rid


def open_stream(stack: ExitStack, service: ServiceProcess, rid: str, key: str) -> httpx.Response:
    client = stack.enter_context(
        httpx.Client(base_url=service.url, headers={"X-API-Key": key}, timeout=10)
    )
    return stack.enter_context(client.stream("GET", f"/api/v1/requests/{rid}/events"))


def test_a_key_holds_a_bounded_number_of_streams(service: ServiceProcess) -> None:
    admin = new_key(service, "--scope", "admin")
    reader = new_key(service, "--scope", "read", "--read-per-hour", "0")
    other = new_key(service, "--scope", "read", "--read-per-hour", "0")
    rid = held_request(service, admin)
    with ExitStack() as first:
        streams = [open_stream(first, service, rid, reader) for _ in range(2)]
        assert all(s.status_code == 200 for s in streams)
        with ExitStack() as more:
            refused = open_stream(more, service, rid, reader)
            refused.read()
            assert refused.status_code == 429
            assert refused.json()["error"]["code"] == "RATE_LIMIT_EXCEEDED"
            assert open_stream(more, service, rid, other).status_code == 200  # its own cap
    # Closed, the streams give their slots back (the server notices the disconnection).
    deadline = time.monotonic() + 20
    while True:
        with ExitStack() as again:
            if open_stream(again, service, rid, reader).status_code == 200:
                break
        assert time.monotonic() < deadline, "the slots were never given back"
        time.sleep(0.2)


def test_an_open_stream_spends_reads_until_the_hourly_limit(service: ServiceProcess) -> None:
    admin = new_key(service, "--scope", "admin")
    reader = new_key(service, "--scope", "read", "--read-per-hour", "4")
    rid = held_request(service, admin)
    events: list[str] = []
    with ExitStack() as stack:
        stream = open_stream(stack, service, rid, reader)  # one read
        for line in stream.iter_lines():  # a read every 0.3 s while it lasts
            if line.startswith("event: "):
                events.append(line.removeprefix("event: "))
    assert events[0] == "state" and events[-1] == "error", events
    with httpx.Client(base_url=service.url, headers={"X-API-Key": reader}) as client:
        spent = client.get("/api/v1/requests")
    assert spent.status_code == 429 and spent.headers["x-ratelimit-remaining"] == "0"
