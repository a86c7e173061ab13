"""The real service filing on a GitHub-shaped server over HTTP, with faults injected."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest

from tests.e2e.test_pipeline_e2e import submit_many
from tests.factories import report_dict
from tests.fakes.github_server import run_fake_github
from tests.service import ServiceProcess, wait_until_terminal

pytestmark = pytest.mark.e2e

TOKEN = "ghp_" + "e2e0token0" * 4


def github_env(url: str, repository: str) -> dict[str, str]:
    return {
        "AI_PIPELINE_TRACKER": "github",
        "AI_PIPELINE_GITHUB_TOKEN": TOKEN,
        "AI_PIPELINE_GITHUB_REPOSITORY": repository,
        "AI_PIPELINE_GITHUB_API_URL": url,
        "AI_PIPELINE_GITHUB_TIMEOUT_SECONDS": "1",
    }


def test_5xx_and_unknown_outcomes_still_file_exactly_once(tmp_path: Path) -> None:
    with run_fake_github(token=TOKEN) as gh:
        gh.fail_next(status=502, times=2, method="POST")
        gh.delay_next(seconds=3.0, times=1, method="POST")  # stored, answer lost
        with (
            ServiceProcess(tmp_path, github_env(gh.url, gh.repository)) as svc,
            svc.client() as client,
        ):
            ids = [
                client.post("/api/v1/bug-reports", json=report_dict()).json()["request_id"]
                for _ in range(5)
            ]
            final = wait_until_terminal(client, ids, timeout=120)
            assert {d["status"] for d in final.values()} == {"completed"}
            for rid, doc in final.items():
                (issue,) = gh.issues_for(rid)
                assert doc["github_issue_number"] == issue["number"]
                assert doc["github_issue_url"] == issue["html_url"]
            assert TOKEN not in svc.log()


def test_a_validation_error_fails_the_request_readably_and_dead_letters_it(
    tmp_path: Path,
) -> None:
    with run_fake_github(token=TOKEN) as gh:
        gh.validation_error_next(field="labels", times=1)
        with (
            ServiceProcess(tmp_path, github_env(gh.url, gh.repository)) as svc,
            svc.client() as client,
        ):
            rid = client.post("/api/v1/bug-reports", json=report_dict()).json()["request_id"]
            (doc,) = wait_until_terminal(client, [rid]).values()
            assert doc["status"] == "failed"
            assert "422" in doc["error_message"] and "labels" in doc["error_message"]
            assert gh.issues_for(rid) == []
            post_calls = [r for r in gh.requests if r.method == "POST"]
            assert len(post_calls) == 1  # a 4xx is never retried
            dead = [json.loads(line) for line in svc.log().splitlines() if "dead_lettered" in line]
            assert dead and dead[0]["request_id"] == rid  # JSON logs carry the request id
            other = client.post("/api/v1/bug-reports", json=report_dict()).json()["request_id"]
            (after,) = wait_until_terminal(client, [other]).values()
            assert after["status"] == "completed"  # the rest keeps flowing


def test_sigkill_mid_stream_files_every_report_once_on_github(tmp_path: Path) -> None:
    with run_fake_github(token=TOKEN) as gh:
        svc = ServiceProcess(tmp_path, github_env(gh.url, gh.repository)).start()
        reports = [report_dict() for _ in range(150)]
        accepted: dict[str, str] = {}
        sender = threading.Thread(target=submit_many, args=(svc.url, reports, accepted))
        sender.start()
        gh.wait_for(lambda g: len(g.issues) >= 20, timeout=120)
        svc.kill()
        sender.join(60)
        svc.start()
        submit_many(svc.url, [r for r in reports if r["id"] not in accepted], accepted)
        with svc.client() as client:
            final = wait_until_terminal(client, list(accepted.values()), timeout=300)
        svc.stop()
        assert {d["status"] for d in final.values()} == {"completed"}
        for rid in accepted.values():
            assert len(gh.issues_for(rid)) == 1, rid
        assert len(gh.issues) == len(reports)
