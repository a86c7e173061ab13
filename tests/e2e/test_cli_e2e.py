"""The command line against the real service, as a user types it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.factories import report_dict
from tests.service import ServiceProcess, wait_until_terminal

pytestmark = pytest.mark.e2e


def cli(*args: str, url: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ai_pipeline.cli", *args, "--url", url],
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_submit_status_requests_and_issues_from_the_command_line(tmp_path: Path) -> None:
    report = tmp_path / "report.json"
    report.write_text(json.dumps(report_dict(id="CLI-1")))
    with ServiceProcess(tmp_path) as svc, svc.client() as client:
        submitted = cli("submit", str(report), "--json", url=svc.url)
        assert submitted.returncode == 0, submitted.stderr
        request_id = json.loads(submitted.stdout)["request_id"]
        from_flags = cli(
            "submit",
            "--title",
            "Login button does nothing",
            "--description",
            "Nothing happens",
            "--reporter",
            "me@example.com",
            "--step",
            "Open login",
            "--step",
            "Click",
            url=svc.url,
        )
        assert from_flags.returncode == 0 and "accepted" in from_flags.stdout
        wait_until_terminal(client, [request_id])
        status = cli("status", request_id, url=svc.url)
        assert "completed" in status.stdout and "issue #" in status.stdout
        listed = cli("requests", "--status", "all", url=svc.url)
        assert "CLI-1" in listed.stdout
        issues = cli("issues", "--json", url=svc.url)
        assert any(
            i["title"].startswith("Editor crashes") for i in json.loads(issues.stdout)["issues"]
        )


def test_the_cli_explains_errors_in_the_envelope(tmp_path: Path) -> None:
    with ServiceProcess(tmp_path) as svc:
        missing = cli("status", "no-such-request", url=svc.url)
        assert missing.returncode == 1 and "REQUEST_NOT_FOUND" in missing.stderr
        invalid = cli(
            "submit", "--title", "x", "--description", "y", "--reporter", "nope", url=svc.url
        )
        assert invalid.returncode == 1 and "VALIDATION_ERROR" in invalid.stderr


def test_the_cli_says_when_the_service_is_not_running() -> None:
    result = cli("requests", url="http://127.0.0.1:9")
    assert result.returncode == 2 and "cannot reach" in result.stderr
