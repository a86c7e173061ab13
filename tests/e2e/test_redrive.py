"""``ai-pipeline redrive``: a credential, permission or repository problem is recoverable once
fixed. GitHub refuses (401, 404) and requests fail; the configuration is fixed and the
service restarted; a dry run changes nothing; the redrive files each report once."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.factories import report_dict
from tests.fakes.github_server import UNPACED, FakeGitHub, run_fake_github
from tests.fleet import all_requests
from tests.service import ServiceProcess, wait_until_terminal

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]

TOKEN = "ghp_" + "redrive0tok" * 4


def github_env(gh: FakeGitHub, **changes: str) -> dict[str, str]:
    return {
        "AI_PIPELINE_TRACKER": "github",
        "AI_PIPELINE_GITHUB_TOKEN": TOKEN,
        "AI_PIPELINE_GITHUB_REPOSITORY": gh.repository,
        "AI_PIPELINE_GITHUB_API_URL": gh.url,
        **UNPACED,
        **changes,
    }


def redrive(svc: ServiceProcess, *args: str) -> subprocess.CompletedProcess[str]:
    """``ai-pipeline redrive ARGS`` with the service's settings, as an operator runs it."""
    return subprocess.run(
        [sys.executable, "-m", "ai_pipeline.cli", "redrive", *args],
        env=svc.env,
        cwd=svc.workdir,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def submit(client: httpx.Client, reports: list[dict[str, Any]]) -> list[str]:
    answers = [client.post("/api/v1/bug-reports", json=r) for r in reports]
    assert {a.status_code for a in answers} == {201}
    return [a.json()["request_id"] for a in answers]


def snapshot(client: httpx.Client) -> dict[str, tuple[str, str]]:
    return {s["request_id"]: (s["status"], s["updated_at"]) for s in all_requests(client)}


def assert_one_issue_each(gh: FakeGitHub, final: dict[str, dict[str, Any]]) -> None:
    assert {d["status"] for d in final.values()} == {"completed"}, final
    for rid, doc in final.items():
        (issue,) = gh.issues_for(rid)
        assert doc["github_issue_number"] == issue["number"]


def test_a_renamed_repository_fails_reports_and_a_redrive_files_each_once(tmp_path: Path) -> None:
    since = (datetime.now(UTC) - timedelta(seconds=5)).isoformat()
    with run_fake_github(token=TOKEN) as gh:
        renamed = github_env(gh, AI_PIPELINE_GITHUB_REPOSITORY="acme/old-name")
        with ServiceProcess(tmp_path, renamed) as svc, svc.client() as client:
            reports = [report_dict() for _ in range(3)]
            ids = submit(client, reports)
            failed = wait_until_terminal(client, ids)
            assert {d["status"] for d in failed.values()} == {"failed"}
            assert all("does not exist" in d["error_message"] for d in failed.values())
            again = client.post("/api/v1/bug-reports", json=reports[0])
            assert again.status_code == 200
            assert f"ai-pipeline redrive --request {ids[0]}" in again.json()["message"]
        assert gh.issues == []

        fixed = ServiceProcess(tmp_path, github_env(gh))
        fixed.port, fixed.url = svc.port, svc.url  # the same service, restarted
        with fixed, fixed.client() as client:
            before = snapshot(client)
            dry = redrive(fixed, "--failed-since", since, "--dry-run", "--json")
            assert dry.returncode == 0, dry.stderr
            planned = json.loads(dry.stdout)
            assert sorted(p["request_id"] for p in planned) == sorted(ids)
            assert {(p["step"], p["action"]) for p in planned} == {
                ("ticket_creation", "would redrive")
            }
            assert snapshot(client) == before and gh.issues == []

            done = redrive(fixed, "--failed-since", since)
            assert done.returncode == 0, done.stderr
            assert "3 redriven" in done.stdout
            assert_one_issue_each(gh, wait_until_terminal(client, ids))

            twice = redrive(fixed, "--failed-since", since)
            assert twice.returncode == 0 and "nothing to redrive" in twice.stdout
            assert len(gh.issues) == 3


def test_a_bad_token_dead_letters_reports_and_a_dead_letter_redrive_files_each_once(
    tmp_path: Path,
) -> None:
    with run_fake_github(token=TOKEN) as gh:
        wrong = github_env(gh, AI_PIPELINE_GITHUB_TOKEN="ghp_" + "revoked000" * 4)
        with ServiceProcess(tmp_path, wrong) as svc, svc.client() as client:
            ids = submit(client, [report_dict() for _ in range(2)])
            failed = wait_until_terminal(client, ids)
            assert all("401" in d["error_message"] for d in failed.values())

        fixed = ServiceProcess(tmp_path, github_env(gh))
        fixed.port, fixed.url = svc.port, svc.url
        with fixed, fixed.client() as client:
            before = snapshot(client)
            dry = redrive(fixed, "--dead-letters", "ticket-creation.dlq", "--dry-run", "--json")
            assert dry.returncode == 0, dry.stderr
            planned = json.loads(dry.stdout)
            assert sorted(p["request_id"] for p in planned) == sorted(ids)
            assert {(p["step"], p["topic"]) for p in planned} == {("github", "ticket-creation")}
            assert snapshot(client) == before and gh.issues == []

            done = redrive(fixed, "--dead-letters", "ticket-creation.dlq")
            assert done.returncode == 0, done.stderr
            assert_one_issue_each(gh, wait_until_terminal(client, ids))

            # The dead letters stay on their topic; their requests are no longer failed.
            again = redrive(fixed, "--dead-letters", "ticket-creation.dlq", "--json")
            assert again.returncode == 0, again.stderr
            assert {p["action"] for p in json.loads(again.stdout)} == {"skipped"}
            assert len(gh.issues) == 2

            one = redrive(fixed, "--request", ids[0])
            assert one.returncode == 1 and "not failed" in one.stdout + one.stderr
