"""The routes behind the web console, in-process on the real embedded service: the review
queue (hold, list, correct, release, training example), duplicate hints, live updates
and the dashboard's figures."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from ai_pipeline.api.app import create_app
from ai_pipeline.bootstrap import Container, bootstrap
from ai_pipeline.cli import app
from ai_pipeline.triage.export import load_export
from tests.conftest import make_settings
from tests.factories import report_dict

XSS = {
    "title": "Stored XSS in comment field",
    "description": "Posting <script>alert(1)</script> as a comment executes it for every"
    " visitor. This is a cross-site scripting vulnerability.",
}


def wait_for(client: TestClient, rid: str, done: Any, timeout: float = 60) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        doc: dict[str, Any] = client.get(f"/api/v1/requests/{rid}/status").json()
        if done(doc):
            return doc
        time.sleep(0.05)
    raise TimeoutError(f"{rid}: condition never met; last {doc}")


def completed(doc: dict[str, Any]) -> bool:
    return doc["status"] == "completed"


def held(doc: dict[str, Any]) -> bool:
    return doc["current_step"] == "review"


@pytest.fixture
def container(tmp_path: Path) -> Container:
    # A step timeout far below how long the test holds a report: a held report must not
    # be failed as stuck.
    return bootstrap(
        make_settings(
            f"sqlite:///{tmp_path / 'p.db'}", review_hold="security", step_timeout_seconds=1.0
        )
    )


def test_the_review_queue_holds_lists_and_releases_on_redis(
    tmp_path: Path, redis_server: Any
) -> None:
    settings = make_settings(
        f"sqlite:///{tmp_path / 'p.db'}",
        state=redis_server.url,
        redis_key_prefix=f"{tmp_path.name}:",
        review_hold="security",
        step_timeout_seconds=1.0,
    )
    with TestClient(create_app(bootstrap(settings))) as client:
        rid = submit(client, **XSS)
        wait_for(client, rid, held)
        time.sleep(2.5)  # past the step timeout, swept every 0.2 s
        (item,) = client.get("/api/v1/reviews").json()["reviews"]
        assert item["request_id"] == rid
        released = client.post(f"/api/v1/reviews/{rid}", json={"type": "bug"})
        assert released.status_code == 202
        assert wait_for(client, rid, completed)["github_issue_number"]
        assert client.get("/api/v1/reviews").json()["pagination"]["total"] == 0


@pytest.fixture
def client(container: Container) -> Iterator[TestClient]:
    with TestClient(create_app(container), raise_server_exceptions=False) as client:
        yield client


def submit(client: TestClient, **fields: Any) -> str:
    response = client.post("/api/v1/bug-reports", json=report_dict(**fields))
    assert response.status_code == 201, response.text
    rid: str = response.json()["request_id"]
    return rid


def test_a_held_report_waits_past_the_step_timeout_then_is_released_corrected_and_filed(
    client: TestClient, container: Container, tmp_path: Path, clean_env: None
) -> None:
    plain = submit(client)
    rid = submit(client, **XSS)
    wait_for(client, plain, completed)  # not held: the policy names security only
    doc = wait_for(client, rid, held)
    time.sleep(2.5)  # the sweeper runs every 0.2 s with a 1 s step timeout

    doc = client.get(f"/api/v1/requests/{rid}/status").json()
    assert doc["status"] == "processing" and doc["current_step"] == "review"
    queue = client.get("/api/v1/reviews").json()
    # What the setting names, and the security review band (always, filing privately).
    assert queue["hold"] == ["security", "security-review"]
    assert queue["pagination"]["total"] == 1
    (item,) = queue["reviews"]
    assert item["request_id"] == rid and item["reasons"] == ["security"]
    assert item["title"] == XSS["title"] and item["triage"]["security_sensitive"] is True
    assert item["triage"]["security_band"] == "private"  # a payload is evidence
    assert item["triage"]["reasons"]["security"] == "'<script>alert(', 'alert(1)' → private"

    released = client.post(
        f"/api/v1/reviews/{rid}",
        json={"priority": "critical", "labels": ["security", "needs-triage", "xss"]},
    )
    assert released.status_code == 202, released.text
    triage = released.json()["triage"]
    assert triage["priority"] == "critical" and triage["confidence"]["priority"] == 1.0
    assert triage["reasons"]["priority"] == "set in review"
    assert triage["labels"] == ["security", "xss"]  # a human decided: needs-triage goes

    done = wait_for(client, rid, completed)
    assert done["progress"]["review"]["data"]["corrections"]["priority"] == "critical"
    assert client.get("/api/v1/reviews").json()["pagination"]["total"] == 0
    assert container.local_tracker is not None
    issue = container.local_tracker.get_issue(done["github_issue_number"])
    assert issue is not None and "xss" in issue.labels

    again = client.post(f"/api/v1/reviews/{rid}", json={})
    assert again.status_code == 400 and again.json()["error"]["code"] == "INVALID_REQUEST"
    assert client.post("/api/v1/reviews/nope", json={}).status_code == 404

    # The command line reads the corrections from the same store, for `train --from`.
    url = f"sqlite:///{tmp_path / 'p.db'}"
    export = tmp_path / "reviews.jsonl"
    result = CliRunner().invoke(
        app,
        ["reviews", "export", "--out", str(export)],
        env={"AI_PIPELINE_STATE": url, "AI_PIPELINE_BUS": url},
    )
    assert result.exit_code == 0, result.output
    (example,) = [json.loads(line) for line in export.read_text().splitlines()]
    assert example["request_id"] == rid and example["title"] == XSS["title"]
    labels = {
        task: [e.label for e in found] for task, found in load_export(export).examples.items()
    }
    assert labels["priority"] == ["critical"] and labels["security"] == ["security"]


def test_a_correction_outside_the_allowed_values_is_refused_in_the_envelope(
    client: TestClient,
) -> None:
    rid = submit(client, **XSS)
    wait_for(client, rid, held)
    for body in ({"priority": "urgent!!"}, {"labels": ["a,b"]}, {"owner": "x"}):
        response = client.post(f"/api/v1/reviews/{rid}", json=body)
        assert response.status_code == 422, body
        assert response.json()["error"]["code"] == "VALIDATION_ERROR"
    assert client.get(f"/api/v1/requests/{rid}/status").json()["current_step"] == "review"


def test_duplicate_hints_offer_filed_public_issues_only(client: TestClient) -> None:
    filed = submit(client, title="Editor crashes when saving a large file")
    private = submit(client, **XSS)
    doc = wait_for(client, filed, completed)
    wait_for(client, private, held)

    hints = client.get(
        "/api/v1/duplicate-candidates", params={"title": "editor crash saving large file"}
    ).json()["candidates"]
    assert hints and hints[0]["request_id"] == filed
    assert hints[0]["issue_number"] == doc["github_issue_number"]
    assert hints[0]["issue_url"] == doc["github_issue_url"]
    assert 0 < hints[0]["similarity"] <= 1

    xss = client.get("/api/v1/duplicate-candidates", params={"title": XSS["title"]}).json()
    assert all(h["request_id"] != private for h in xss["candidates"])
    short = client.get("/api/v1/duplicate-candidates", params={"title": "ab"}).json()
    assert short == {"candidates": []}


def test_live_updates_stream_each_change_and_end_once_the_request_has(
    client: TestClient, container: Container
) -> None:
    rid = submit(client)
    states = []
    with client.stream("GET", f"/api/v1/requests/{rid}/events") as stream:
        assert stream.headers["content-type"].startswith("text/event-stream")
        # An open stream is not a request in flight: it must not throttle the agents.
        assert container.ingest_priority.in_flight == 0
        for line in stream.iter_lines():
            if line.startswith("data: "):
                states.append(json.loads(line.removeprefix("data: ")))
    latency = container.metrics.registry.get_sample_value(
        "ai_pipeline_http_request_duration_seconds_count",
        {"method": "GET", "route": "/api/v1/requests/{request_id}/events"},
    )
    assert latency == 1  # counted once, when the stream started
    assert states[-1]["status"] == "completed" and states[-1]["github_issue_url"]
    ranks = [len(s["progress"]) for s in states]
    assert ranks == sorted(ranks)  # never goes back
    missing = client.get("/api/v1/requests/nope/events")
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "REQUEST_NOT_FOUND"


def test_the_metrics_document_carries_the_dashboards_daily_counts_and_histogram(
    client: TestClient,
) -> None:
    rid = submit(client)
    wait_for(client, rid, completed)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:  # the daily counters are flushed every 0.2 s here
        doc = client.get("/api/v1/metrics", params={"period": "24h"}).json()
        if doc["daily"][-1]["completed"] >= 1:
            break
        time.sleep(0.1)
    assert len(doc["daily"]) == 14 and doc["daily"][-1]["submitted"] >= 1
    histogram = doc["processing_time_histogram"]
    assert len(histogram["counts"]) == len(histogram["bounds_seconds"]) + 1
    assert sum(histogram["counts"]) == doc["processing_time_seconds"]["samples"] >= 1


def test_the_console_is_served_and_the_root_leads_to_it(client: TestClient) -> None:
    root = client.get("/", follow_redirects=False)
    assert root.status_code == 307 and root.headers["location"] == "/console/"
    page = client.get("/console/")
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
