"""An outage never fails a request: GitHub answering 502 and dropping connections for much
longer than the step timeout, in the embedded service and in the distributed fleet (Kafka,
Redis, one process per agent). Nothing fails while it lasts; when it ends every report is
filed, exactly once."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from ai_pipeline.drafting.marker import request_id_in
from tests.factories import report_dict
from tests.fakes.github_server import UNPACED, FakeGitHub, run_fake_github
from tests.fleet import TOKEN, Fleet, all_requests
from tests.service import ServiceProcess

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600)]

# Short, yet longer than one report's triage takes on a loaded 2-core box (a slower step
# than this is stuck, outage or not).
STEP_TIMEOUT = 8.0


def quick(step_timeout: float = STEP_TIMEOUT) -> dict[str, str]:
    """A short step timeout; the sweeper looks often and agents say often that they live."""
    return {
        "AI_PIPELINE_STEP_TIMEOUT_SECONDS": str(step_timeout),
        "AI_PIPELINE_SWEEP_INTERVAL_SECONDS": "0.5",
        "AI_PIPELINE_HEARTBEAT_INTERVAL_SECONDS": "0.5",
        "AI_PIPELINE_GITHUB_TIMEOUT_SECONDS": "2",
    }


# The outage outlasts the step timeout several times over.
OUTAGE_SECONDS = 4 * STEP_TIMEOUT


def github_env(gh: FakeGitHub) -> dict[str, str]:
    return {
        "AI_PIPELINE_TRACKER": "github",
        "AI_PIPELINE_GITHUB_TOKEN": TOKEN,
        "AI_PIPELINE_GITHUB_REPOSITORY": gh.repository,
        "AI_PIPELINE_GITHUB_API_URL": gh.url,
        **UNPACED,
        **quick(),
    }


def outage(gh: FakeGitHub) -> None:
    """Every call answered 502 or its connection dropped: no hint of how long it lasts."""
    gh.chaos(1.0, ["502", "reset"], seed=13)


def wait_until(
    condition: Callable[[], bool],
    timeout: float,
    what: str,
    states: Callable[[], list[dict[str, Any]]],
) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            where = Counter(f"{s['status']}:{s['current_step']}" for s in states())
            raise AssertionError(f"not within {timeout:.0f}s: {what}; requests at {dict(where)}")
        time.sleep(0.2)


def waiting_on_github(states: list[dict[str, Any]]) -> int:
    """Requests drafted and waiting for the tracker."""
    return sum(
        1
        for s in states
        if s["status"] == "processing"
        and s["progress"].get("ticket_creation", {}).get("status") == "completed"
    )


def ride_out_the_outage(
    gh: FakeGitHub, states: Callable[[], list[dict[str, Any]]], reports: int
) -> None:
    """Once every report waits on GitHub, the outage goes on for OUTAGE_SECONDS: nothing may
    fail meanwhile. Then it ends."""
    wait_until(lambda: waiting_on_github(states()) == reports, 240, "every report drafted", states)
    ends = time.monotonic() + OUTAGE_SECONDS
    while time.monotonic() < ends:
        failed = {s["request_id"]: s["error_message"] for s in states() if s["status"] == "failed"}
        assert failed == {}, "an outage failed requests"
        time.sleep(0.5)
    assert gh.issues == []  # nothing got through: it was an outage all along
    gh.calm()


def assert_filed_exactly_once(gh: FakeGitHub, final: list[dict[str, Any]], reports: int) -> None:
    assert Counter(s["status"] for s in final) == {"completed": reports}
    filed = Counter(request_id_in(issue["body"]) for issue in gh.issues)
    assert set(filed) == {s["request_id"] for s in final}
    assert set(filed.values()) == {1}
    for state in final:
        assert state["github_issue_number"] is not None


def test_a_tracker_outage_longer_than_the_step_timeout_fails_nothing_embedded(
    tmp_path: Path,
) -> None:
    reports = 15
    with run_fake_github(token=TOKEN) as gh:
        outage(gh)
        with ServiceProcess(tmp_path, github_env(gh)) as svc, svc.client() as client:

            def states() -> list[dict[str, Any]]:
                return all_requests(client)

            for _ in range(reports):
                assert client.post("/api/v1/bug-reports", json=report_dict()).status_code == 201
            ride_out_the_outage(gh, states, reports)
            wait_until(
                lambda: Counter(s["status"] for s in states()) == {"completed": reports},
                120,
                "every report filed once the outage ended",
                states,
            )
            assert_filed_exactly_once(gh, states(), reports)


@pytest.fixture
def fleet(start_fleet: Callable[..., Fleet]) -> Fleet:
    return start_fleet(triage_agents=1, env=quick())


def test_a_tracker_outage_longer_than_the_step_timeout_fails_nothing_distributed(
    fleet: Fleet, github: FakeGitHub
) -> None:
    reports = 30
    outage(github)
    fleet.submit([report_dict() for _ in range(reports)])
    ride_out_the_outage(github, fleet.all_requests, reports)
    fleet.wait_all_done(reports, timeout=240)
    final = fleet.all_requests()
    assert_filed_exactly_once(github, final, reports)
    # The API process's coordinator saw the tracker agent waiting, from its heartbeat.
    with fleet.client() as client:
        health = client.get("/api/v1/health").json()
    assert health["components"]["github_api_agent"]["members"] == 1
    assert httpx.get(f"{fleet.agents['github-api'][0].url}/health", timeout=10).is_success
