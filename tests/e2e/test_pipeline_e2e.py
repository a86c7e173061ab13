"""The real service over HTTP: reports become issues, survive SIGKILL, never twice."""

from __future__ import annotations

import subprocess
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from ai_pipeline.drafting.marker import request_id_in
from tests.factories import report_dict
from tests.service import ServiceProcess, wait_until_terminal

pytestmark = pytest.mark.e2e


def all_local_issues(client: httpx.Client) -> list[dict[str, object]]:
    issues: list[dict[str, object]] = []
    while True:
        page = client.get("/api/v1/issues", params={"limit": 100, "offset": len(issues)}).json()
        issues.extend(page["issues"])
        if not page["pagination"]["has_more"]:
            return issues


def test_a_report_becomes_a_triaged_local_issue(tmp_path: Path) -> None:
    with ServiceProcess(tmp_path) as svc, svc.client() as client:
        response = client.post("/api/v1/bug-reports", json=report_dict())
        assert response.status_code == 201, response.text
        body = response.json()
        assert body["status"] == "submitted"
        assert body["links"]["status"] == f"/api/v1/requests/{body['request_id']}/status"
        (doc,) = wait_until_terminal(client, [body["request_id"]]).values()
        assert doc["status"] == "completed", doc
        triage = doc["progress"]["triage"]["data"]
        assert triage["type"] in ("bug", "feature", "question")
        assert set(triage["confidence"]) >= {"type", "security"}
        assert {"type", "security", "category"} <= set(triage["reasons"])
        assert triage["security_band"] == "public"
        assert doc["processing_time_seconds"] > 0
        issue = client.get(f"/api/v1/issues/{doc['github_issue_number']}").json()
        assert issue["url"] == doc["github_issue_url"]
        assert request_id_in(issue["body"]) == body["request_id"]
        assert issue["labels"] and "reporter@example.com" not in issue["body"]


def test_resubmitting_returns_the_first_request(tmp_path: Path) -> None:
    with ServiceProcess(tmp_path) as svc, svc.client() as client:
        report = report_dict()
        first = client.post("/api/v1/bug-reports", json=report)
        again = client.post("/api/v1/bug-reports", json=report)
        assert (first.status_code, again.status_code) == (201, 200)
        assert first.json()["request_id"] == again.json()["request_id"]
        headers = {"Idempotency-Key": "retry-42"}
        keyed = report_dict()
        a = client.post("/api/v1/bug-reports", json=keyed, headers=headers)
        b = client.post("/api/v1/bug-reports", json=keyed, headers=headers)
        assert a.json()["request_id"] == b.json()["request_id"]
        # The key reused for another report is the client's mistake: refused, not dropped.
        other = client.post("/api/v1/bug-reports", json=report_dict(), headers=headers)
        assert other.status_code == 409 and other.json()["error"]["code"] == "INVALID_REQUEST"
        total = client.get("/api/v1/requests", params={"status": "all"}).json()
        assert total["pagination"]["total"] == 2


def submit_many(url: str, reports: list[dict[str, object]], accepted: dict[str, str]) -> None:
    """Post from 8 threads; record id → request id for every 201, ignore refusals."""
    lock = threading.Lock()

    def post(report: dict[str, object]) -> None:
        try:
            r = httpx.post(f"{url}/api/v1/bug-reports", json=report, timeout=10)
        except httpx.HTTPError:
            return
        if r.status_code in (200, 201):
            with lock:
                accepted[str(report["id"])] = r.json()["request_id"]

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(post, reports))


def test_sigkill_mid_stream_loses_nothing_and_files_nothing_twice(tmp_path: Path) -> None:
    svc = ServiceProcess(tmp_path).start()
    reports = [report_dict() for _ in range(400)]
    accepted: dict[str, str] = {}
    sender = threading.Thread(target=submit_many, args=(svc.url, reports, accepted))
    sender.start()
    with svc.client() as client:
        # Kill while reports are still arriving and the agents are mid-way through them.
        deadline_polls = 0
        while len(accepted) < 120 and deadline_polls < 600:
            threading.Event().wait(0.05)
            deadline_polls += 1
        svc.kill()
    sender.join(60)
    assert 0 < len(accepted) < len(reports), "the kill must land mid-stream"

    svc.start()
    with svc.client() as client:
        # A client retries what it never got an answer for: same ids, so no duplicates.
        retried = [r for r in reports if r["id"] not in accepted]
        submit_many(svc.url, retried, accepted)
        assert len(accepted) == len(reports)
        final = wait_until_terminal(client, list(accepted.values()), timeout=300)
        assert {d["status"] for d in final.values()} == {"completed"}
        issues = all_local_issues(client)
        markers = [request_id_in(str(i["body"])) for i in issues]
        assert len(issues) == len(reports)
        assert sorted(markers) == sorted(accepted.values())
        total = client.get("/api/v1/requests", params={"status": "all"}).json()
        assert total["pagination"]["total"] == len(reports)
    svc.stop()


def test_the_runbook_health_commands_work(tmp_path: Path) -> None:
    with ServiceProcess(tmp_path) as svc, svc.client() as client:
        client.post("/api/v1/bug-reports", json=report_dict())
        base = f"localhost:{svc.port}"
        health = subprocess.run(
            f"curl -s {base}/api/v1/health | jq .",
            shell=True,
            capture_output=True,
            text=True,
            check=True,
        )
        assert '"status": "healthy"' in health.stdout
        total = subprocess.run(
            f"curl -s {base}/api/v1/requests | jq .pagination.total",
            shell=True,
            capture_output=True,
            text=True,
            check=True,
        )
        assert total.stdout.strip().isdigit()


def test_prometheus_metrics_carry_the_names_the_alerts_read(tmp_path: Path) -> None:
    with ServiceProcess(tmp_path) as svc, svc.client() as client:
        rid = client.post("/api/v1/bug-reports", json=report_dict()).json()["request_id"]
        wait_until_terminal(client, [rid])
        text = client.get("/metrics").text
        for name in (
            "ai_pipeline_requests_total 1.0",
            "ai_pipeline_requests_failed_total 0.0",
            'kafka_consumer_lag_sum{group="triage-agent-group",topic="bug-reports"}',
            "ai_pipeline_http_request_duration_seconds_bucket",
            "ai_pipeline_processing_time_seconds_count 1.0",
            'ai_pipeline_agent_handled_total{agent="github_api_agent"} 1.0',
            "ai_pipeline_state_operations_total",
            "ai_pipeline_bus_messages_published_total",
        ):
            assert name in text, name
