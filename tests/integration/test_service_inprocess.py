"""The assembled service in-process: real adapters, faults injected into them."""

from __future__ import annotations

import gc
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from ai_pipeline.adapters.trackers.github import GitHubTracker
from ai_pipeline.api.app import create_app
from ai_pipeline.bootstrap import Container, bootstrap
from tests.conftest import make_settings
from tests.factories import report_dict
from tests.fakes.github_server import run_fake_github


def serve(container: Container) -> TestClient:
    return TestClient(create_app(container), raise_server_exceptions=False)


def wait_for(client: TestClient, rid: str, status: str, timeout: float = 30) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        doc: dict[str, Any] = client.get(f"/api/v1/requests/{rid}/status").json()
        if doc["status"] == status:
            return doc
        time.sleep(0.05)
    raise TimeoutError(f"{rid} never became {status}")


@pytest.fixture
def container(tmp_path: Path) -> Container:
    return bootstrap(make_settings(f"sqlite:///{tmp_path / 'p.db'}"))


def test_an_internal_failure_answers_500_in_the_envelope(container: Container) -> None:
    with serve(container) as client:
        rid = client.post("/api/v1/bug-reports", json=report_dict()).json()["request_id"]
        assert client.portal is not None
        for db in container.databases:
            client.portal.call(db.close)  # the store goes away under the running service
        response = client.get(f"/api/v1/requests/{rid}/status")
        assert response.status_code == 500
        error = response.json()["error"]
        assert error["code"] == "INTERNAL_ERROR" and "Traceback" not in response.text


def test_a_failing_store_answers_500_on_the_ingest_fast_path(container: Container) -> None:
    with serve(container) as client:
        assert client.portal is not None
        for db in container.databases:
            client.portal.call(db.close)
        response = client.post("/api/v1/bug-reports", json=report_dict())
        assert response.status_code == 500
        assert response.json()["error"]["code"] == "INTERNAL_ERROR"
        assert response.json()["error"]["request_id"] == response.headers["x-request-id"]


def test_a_stopped_agent_shows_in_health(container: Container) -> None:
    with serve(container) as client:
        assert client.get("/api/v1/health").json()["status"] == "healthy"
        triage = next(r for r in container.runners if r.spec.name == "triage_agent")
        assert client.portal is not None
        client.portal.call(triage.stop)
        deadline = time.monotonic() + 10  # health is reused for a second (api.app)
        while (doc := client.get("/api/v1/health").json())["status"] == "healthy":
            assert time.monotonic() < deadline
            time.sleep(0.1)
        assert doc["status"] == "degraded"
        assert doc["components"]["triage_agent"]["status"] == "unhealthy"
        assert doc["components"]["coordinator_agent"]["status"] == "healthy"


def test_a_request_stuck_longer_than_the_timeout_ends_failed_with_a_reason(
    tmp_path: Path,
) -> None:
    token = "ghp_" + "stuck0token" * 4
    with run_fake_github(token=token) as gh:
        gh.delay_next(seconds=60, times=1, method="POST")  # the tracker never answers in time
        settings = make_settings(f"sqlite:///{tmp_path / 'p.db'}", step_timeout_seconds=1.0)
        tracker = GitHubTracker(gh.url, gh.repository, token, timeout=30)
        with serve(bootstrap(settings, tracker=tracker)) as client:
            rid = client.post("/api/v1/bug-reports", json=report_dict()).json()["request_id"]
            doc = wait_for(client, rid, "failed")
            assert "timed out" in doc["error_message"] and "github" in doc["error_message"]


def test_requests_waiting_on_a_step_no_agent_runs_are_never_failed(tmp_path: Path) -> None:
    """The tracker agent is down (or scaled to 0): its reports wait in the log, and the lag
    alerts say so; a timeout that failed them would lose them for nothing."""
    settings = make_settings(f"sqlite:///{tmp_path / 'p.db'}", step_timeout_seconds=0.5)
    container = bootstrap(settings)
    agents = ("coordinator_agent", "triage_agent", "ticket_creation_agent")
    with TestClient(create_app(container, agents), raise_server_exceptions=False) as client:
        rid = client.post("/api/v1/bug-reports", json=report_dict()).json()["request_id"]
        deadline = time.monotonic() + 30
        while client.get(f"/api/v1/requests/{rid}/status").json()["current_step"] != (
            "ticket_creation"
        ):
            assert time.monotonic() < deadline
            time.sleep(0.05)
        time.sleep(10 * settings.step_timeout_seconds)  # many timeouts, sweeps and beats
        doc = client.get(f"/api/v1/requests/{rid}/status").json()
        assert (doc["status"], doc["error_message"]) == ("processing", None)


def test_the_coordinator_reads_every_agents_heartbeat_from_the_store(
    container: Container,
) -> None:
    with serve(container) as client:
        assert client.portal is not None
        deadline = time.monotonic() + 30
        agents = {r.spec.name for r in container.runners}
        while len(beats := client.portal.call(container.store.heartbeats)) < len(agents):
            assert time.monotonic() < deadline
            time.sleep(0.05)
    assert {b.agent for b in beats} == agents
    assert {"coordinator_agent", "triage_agent", "github_api_agent", "notifier_agent"} <= agents
    assert {b.instance for b in beats} == {container.instance}
    assert {b.waiting_on for b in beats} == {None}


@pytest.fixture
def many(container: Container) -> Iterator[TestClient]:
    with serve(container) as client:
        yield client


def test_metrics_count_accepted_and_failed_requests(many: TestClient) -> None:
    rid = many.post("/api/v1/bug-reports", json=report_dict()).json()["request_id"]
    wait_for(many, rid, "completed")
    text = many.get("/metrics").text
    assert "ai_pipeline_requests_total 1.0" in text
    assert "ai_pipeline_requests_completed_total 1.0" in text
    doc = many.get("/api/v1/metrics", params={"period": "1h"}).json()
    assert doc["requests"]["completed"] == 1
    assert doc["agents"]["triage_agent"]["success"] == 1


def test_a_state_store_outage_answers_503_and_a_retry_later_succeeds(
    tmp_path: Path, redis_server: Any
) -> None:
    settings = make_settings(
        f"sqlite:///{tmp_path / 'p.db'}",
        state=redis_server.url,
        redis_key_prefix=f"{tmp_path.name}:",
        submit_timeout_seconds=1.0,
    )
    app = create_app(bootstrap(settings), agents=())
    with TestClient(app, raise_server_exceptions=False) as client:
        report = report_dict()
        redis_server.stop()
        try:
            response = client.post("/api/v1/bug-reports", json=report)
            assert response.status_code == 503
            assert response.headers["retry-after"] == "5"
            error = response.json()["error"]
            assert error["code"] == "SERVICE_UNAVAILABLE" and "retry" in error["message"]
            health = client.get("/api/v1/health")
            assert health.status_code == 503
            assert health.json()["components"]["redis"]["status"] == "unhealthy"
        finally:
            redis_server.start()
        again = client.post("/api/v1/bug-reports", json=report)
        assert again.status_code in (200, 201)  # 200 when the first attempt got recorded
        status = client.get(f"/api/v1/requests/{again.json()['request_id']}/status")
        assert status.json()["bug_report_id"] == report["id"]


def test_garbage_is_collected_on_the_event_loop_never_on_another_thread(
    container: Container,
) -> None:
    """librdkafka's threads run Python callbacks; a collection started there would finalise
    the loop's objects (uvloop transports) off the loop. Cycles made and dropped on another
    thread are collected, and finalised, on the loop's own thread."""
    finalised_on: list[int] = []

    class Cycle:
        def __init__(self) -> None:
            self.me = self

        def __del__(self) -> None:
            finalised_on.append(threading.get_ident())

    with serve(container) as client:
        assert client.portal is not None
        loop_thread = client.portal.call(threading.get_ident)
        for _ in range(200):
            Cycle()
        # Far past CPython's allocation thresholds: on this thread, automatic collection
        # would have run here.
        [[n] for n in range(200_000)]
        deadline = time.monotonic() + 30
        while len(finalised_on) < 200 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert len(finalised_on) == 200
        assert set(finalised_on) == {loop_thread}
    assert gc.isenabled()  # given back to the host process once the service stopped
