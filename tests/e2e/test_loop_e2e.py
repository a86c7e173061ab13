"""Closing the loop against the real service: a notification survives SIGKILL of the
service mid-delivery, and the command line closes, reopens and follows up local issues."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.e2e.test_cli_e2e import cli
from tests.factories import report_dict
from tests.fakes.webhook_receiver import WebhookReceiver
from tests.service import ServiceProcess, wait_until_terminal

pytestmark = pytest.mark.e2e
SECRET = "e2e-webhook-secret"
ENV = {
    "AI_PIPELINE_NOTIFY_WEBHOOK_SECRET": SECRET,
    "AI_PIPELINE_NOTIFY_WEBHOOK_ALLOW_PRIVATE": "true",
    # A try's lease is twice the longest send timeout and 5 s: 9 s here.
    "AI_PIPELINE_NOTIFY_WEBHOOK_TIMEOUT_SECONDS": "2",
    "AI_PIPELINE_SMTP_TIMEOUT_SECONDS": "2",
    "AI_PIPELINE_NOTIFY_SWEEP_SECONDS": "0.5",
}


def wait(check: Callable[[], object], seconds: float = 90.0) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.1)


def test_sigkill_mid_delivery_loses_no_notification(tmp_path: Path) -> None:
    receiver = WebhookReceiver(SECRET.encode(), hang_first=True)
    svc = ServiceProcess(tmp_path, ENV)
    try:
        svc.start(timeout=180)
        with svc.client() as client:
            body = report_dict(notify={"webhook": receiver.url})
            rid = client.post("/api/v1/bug-reports", json=body).json()["request_id"]
        assert receiver.hanging.wait(90), "the notification never left"
        svc.kill()  # while the receiver holds the delivery open
        receiver.release.set()
        svc.start(timeout=180)
        wait(lambda: len(receiver.processed) == 1)
        (delivery_id,) = receiver.processed
        body_seen = receiver.processed[delivery_id]
        assert body_seen["event"] == "filed" and body_seen["request_id"] == rid
        assert [r.delivery_id for r in receiver.received] == [delivery_id] * len(receiver.received)
        assert len(receiver.received) >= 2 and receiver.duplicates == 0
    finally:
        svc.stop()
        receiver.close()


def test_issues_close_reopen_and_follow_up_from_the_command_line(tmp_path: Path) -> None:
    svc = ServiceProcess(tmp_path, ENV).start(timeout=180)  # a loaded box starts slowly
    try:
        run_the_command_line(svc)
    finally:
        svc.stop()


def run_the_command_line(svc: ServiceProcess) -> None:
    with svc.client() as client:
        ids = [
            client.post("/api/v1/bug-reports", json=report_dict(steps_to_reproduce=None)).json()[
                "request_id"
            ]
            for _ in range(2)
        ]
        docs = wait_until_terminal(client, ids)
        first, second = (docs[rid]["github_issue_number"] for rid in ids)

        closed = cli(
            "issues",
            "close",
            str(first),
            "--reason",
            "duplicate",
            "--duplicate-of",
            str(second),
            url=svc.url,
        )
        assert closed.returncode == 0, closed.stderr
        assert f"closed (duplicate of #{second})" in closed.stdout and ids[0] in closed.stdout
        wait(
            lambda: (
                client.get(f"/api/v1/requests/{ids[0]}/status").json()["resolution"]["state"]
                == "duplicate"
            )
        )
        status = cli("status", ids[0], url=svc.url)
        assert f"resolution: duplicate of #{second}" in status.stdout

        shown = json.loads(cli("issues", "--json", url=svc.url).stdout)["issues"]
        assert {i["number"]: i["state_reason"] for i in shown} == {first: "duplicate", second: None}
        reopened = cli("issues", "reopen", str(first), "--json", url=svc.url)
        assert json.loads(reopened.stdout)["state"] == "open"
        wait(
            lambda: (
                client.get(f"/api/v1/requests/{ids[0]}/status").json()["resolution"]["state"]
                == "reopened"
            )
        )

        commented = cli("issues", "comment", str(second), "--text", "On it", url=svc.url)
        assert commented.returncode == 0 and f"commented on #{second}" in commented.stdout
        labelled = cli("issues", "label", str(second), "--add", "pinned", url=svc.url)
        assert "pinned" in labelled.stdout
        wrong = cli("issues", "close", "99999", url=svc.url)
        assert wrong.returncode == 1 and "404" in wrong.stderr

        dry = subprocess_follow_up(svc, "--dry-run", "--json")
        assert dry == []  # nothing is a week old


def subprocess_follow_up(svc: ServiceProcess, *args: str) -> object:
    done = subprocess.run(
        [sys.executable, "-m", "ai_pipeline.cli", "follow-up", *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=svc.workdir,
        env=svc.env,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)
