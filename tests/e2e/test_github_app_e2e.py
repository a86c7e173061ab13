"""The GitHub App mode end to end: webhooks signed as GitHub signs them, the real service,
the GitHub-shaped fake over HTTP.

- Redelivery: the same delivery three times, and at once: one request, one comment.
- Humans: a person's label before we act wins over triage; the author's answer removes
  ``needs-info`` and updates our comment, never a second one; our deleted comment stays
  deleted; bots, pull requests and other repositories are ignored.
- A storm: 300 issues through webhooks while the fake answers 500, 502, 429, secondary
  limits and drops comment creates after storing them: one comment each, the right labels,
  nothing lost; and the same with the service killed (SIGKILL) mid-stream.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.fakes.github_server import run_fake_github
from tests.fakes.github_webhooks import comment_event, deliver, issue_event, user
from tests.github_app import (
    CRASH_BODY,
    SECRET,
    TOKEN,
    app_env,
    check_acted_once_each,
    label_names,
    opened_payloads,
    ours,
    send_all,
)
from tests.service import ServiceProcess, wait_until_terminal

pytestmark = pytest.mark.e2e

VAGUE = "Describe the bug\nThe editor crashes when saving a file and all changes are lost."
ANSWER = (
    "Steps to reproduce:\n1. Open any file\n2. Press Ctrl+S\n\n"
    "Expected: the file is saved\n\nActual: the editor crashes with a segmentation fault\n\n"
    "Version 2.3.1 on Ubuntu 24.04"
)


def test_the_same_delivery_three_times_and_at_once_acts_once(tmp_path: Path) -> None:
    with run_fake_github(token=TOKEN) as gh:
        gh.private = False
        issue = gh.add_issue("Crash when saving with an emoji name", CRASH_BODY, author="alice")
        payload = issue_event(gh, "opened", issue["number"])
        with ServiceProcess(tmp_path, app_env(gh)) as svc, svc.client() as client:
            answers = [
                deliver(svc.url, SECRET, "issues", payload, delivery="d-1") for _ in range(3)
            ]
            with ThreadPoolExecutor(4) as pool:  # and four at once, under another id
                again = list(
                    pool.map(
                        lambda _: deliver(svc.url, SECRET, "issues", payload, delivery="d-2"),
                        range(4),
                    )
                )
            rid = answers[0].json()["request_id"]
            (doc,) = wait_until_terminal(client, [rid]).values()
            listed = client.get("/api/v1/requests", params={"status": "all"}).json()

        assert [a.status_code for a in answers + again] == [202] * 7
        assert [a.json()["outcome"] for a in answers] == ["triaged", "duplicate", "duplicate"]
        # Another delivery of the same opening is the same request, whatever its id.
        assert {a.json()["request_id"] for a in again} <= {rid, None}
        assert listed["pagination"]["total"] == 1
        assert doc["bug_report_id"] == f"gh:acme:widgets:{issue['number']}"
        assert doc["github_issue_number"] == issue["number"]
        check_acted_once_each(gh, {rid: doc})
        assert len(gh.comments(issue["number"])) == 1


def test_a_persons_label_set_before_we_act_wins_over_triage(tmp_path: Path) -> None:
    with run_fake_github(token=TOKEN) as gh:
        gh.private = False
        issue = gh.add_issue("App crashes with a stack trace on save", CRASH_BODY, author="alice")
        payload = issue_event(gh, "opened", issue["number"])  # as it was when opened
        gh.label_issue(issue["number"], "feature")  # a maintainer, before we act
        with ServiceProcess(tmp_path, app_env(gh)) as svc, svc.client() as client:
            rid = deliver(svc.url, SECRET, "issues", payload).json()["request_id"]
            (doc,) = wait_until_terminal(client, [rid]).values()

        triage = doc["progress"]["triage"]["data"]
        assert triage["type"] == "bug" and "bug" in triage["labels"]  # triage says bug…
        acted = doc["progress"]["github"]["data"]["acted_on"]
        labels = label_names(gh, issue["number"])
        assert "feature" in labels and "bug" not in labels  # …the person said feature
        assert "bug" not in acted["labels_applied"]
        (comment,) = ours(gh, issue["number"])
        assert "a person already decided: `bug`" in comment["body"]


def test_the_authors_answer_removes_needs_info_and_updates_our_comment(tmp_path: Path) -> None:
    with run_fake_github(token=TOKEN) as gh:
        gh.private = False
        number = gh.add_issue("Bug: crash when saving a file", VAGUE, author="alice")["number"]
        with ServiceProcess(tmp_path, app_env(gh)) as svc, svc.client() as client:
            first = deliver(svc.url, SECRET, "issues", issue_event(gh, "opened", number)).json()
            (asked,) = wait_until_terminal(client, [first["request_id"]]).values()
            (question,) = ours(gh, number)
            assert "needs-info" in label_names(gh, number)

            # Someone else's comment and a bot's are not answers.
            other = gh.add_comment(number, ANSWER, author="bob")
            bot = gh.add_comment(number, ANSWER, author="helper[bot]", author_type="Bot")
            ignored = [
                deliver(svc.url, SECRET, "issue_comment", comment_event(gh, number, c)).json()
                for c in (other, bot)
            ]
            answer = gh.add_comment(number, ANSWER, author="alice")
            second = deliver(
                svc.url, SECRET, "issue_comment", comment_event(gh, number, answer)
            ).json()
            (checked,) = wait_until_terminal(client, [second["request_id"]]).values()

        assert [i["outcome"] for i in ignored] == ["ignored_not_author", "ignored_bot"]
        assert asked["progress"]["github"]["data"]["acted_on"]["labels_applied"]
        assert "needs-info" in asked["progress"]["triage"]["data"]["labels"]
        assert checked["bug_report_id"] == f"gh:acme:widgets:{number}:2"
        assert checked["progress"]["triage"]["data"]["missing_information"] == []
        acted = checked["progress"]["github"]["data"]["acted_on"]
        assert acted["labels_removed"] == ["needs-info"] and acted["version"] == 2
        assert "needs-info" not in label_names(gh, number)
        (updated,) = ours(gh, number)  # the same comment, edited; not a second one
        assert updated["id"] == question["id"] and updated["body"] != question["body"]
        assert "we need a little more" in question["body"]
        assert "we need a little more" not in updated["body"]
        assert "thank you" in updated["body"]


def test_an_edit_while_waiting_triages_again_and_a_deleted_comment_stays_deleted(
    tmp_path: Path,
) -> None:
    with run_fake_github(token=TOKEN) as gh:
        gh.private = False
        number = gh.add_issue("Bug: crash when saving a file", VAGUE, author="alice")["number"]
        with ServiceProcess(tmp_path, app_env(gh, mode="suggest")) as svc, svc.client() as client:
            first = deliver(svc.url, SECRET, "issues", issue_event(gh, "opened", number)).json()
            wait_until_terminal(client, [first["request_id"]])
            (comment,) = ours(gh, number)
            gh.edit_issue(number, body=f"{VAGUE}\n\n{ANSWER}")
            changes = {"body": {"from": VAGUE}}
            edited = deliver(
                svc.url, SECRET, "issues", issue_event(gh, "edited", number, changes=changes)
            ).json()
            (retriaged,) = wait_until_terminal(client, [edited["request_id"]]).values()
            (after_edit,) = ours(gh, number)

            # Another issue waiting for its author: a maintainer removes our comment, then
            # the author's edit is triaged again, and we stay quiet there.
            other = gh.add_issue("Bug: crash when opening a file", VAGUE, author="bob")["number"]
            opened = deliver(svc.url, SECRET, "issues", issue_event(gh, "opened", other)).json()
            wait_until_terminal(client, [opened["request_id"]])
            (removed,) = ours(gh, other)
            gh.delete_comment(removed["id"])
            gh.edit_issue(other, body=f"{VAGUE}\n\n{ANSWER}")
            again = deliver(
                svc.url, SECRET, "issues", issue_event(gh, "edited", other, changes=changes)
            ).json()
            (third,) = wait_until_terminal(client, [again["request_id"]]).values()

        assert retriaged["progress"]["triage"]["data"]["missing_information"] == []
        assert after_edit["id"] == comment["id"] and after_edit["body"] != comment["body"]
        assert label_names(gh, number) == set()  # suggest mode applies nothing
        assert third["progress"]["github"]["data"]["acted_on"]["skipped"] == "comment_deleted"
        assert ours(gh, other) == []


def test_a_persons_label_changes_are_kept_for_training_and_never_undone(tmp_path: Path) -> None:
    with run_fake_github(token=TOKEN) as gh:
        gh.private = False
        number = gh.add_issue("Bug: crash when saving a file", VAGUE, author="alice")["number"]
        with ServiceProcess(tmp_path, app_env(gh)) as svc, svc.client() as client:
            first = deliver(svc.url, SECRET, "issues", issue_event(gh, "opened", number)).json()
            (v1,) = wait_until_terminal(client, [first["request_id"]]).values()
            ours_first = v1["progress"]["github"]["data"]["acted_on"]["labels_applied"]
            assert "area: crash" in ours_first
            maintainer = user("maria")
            gh.unlabel_issue(number, "area: crash")  # a maintainer disagrees with ours
            gh.label_issue(number, "P1")  # and decides the priority
            recorded = [
                deliver(
                    svc.url,
                    SECRET,
                    "issues",
                    issue_event(gh, action, number, sender=maintainer, label=label),
                ).json()["outcome"]
                for action, label in (("unlabeled", "area: crash"), ("labeled", "P1"))
            ]
            gh.edit_issue(number, body=VAGUE + " It happens every time.")
            changes = {"body": {"from": VAGUE}}
            edited = deliver(
                svc.url, SECRET, "issues", issue_event(gh, "edited", number, changes=changes)
            ).json()
            (v2,) = wait_until_terminal(client, [edited["request_id"]]).values()
            exported = service_cli(svc, "reviews", "export")

        assert recorded == ["recorded", "recorded"]
        assert "area: crash" in v2["progress"]["triage"]["data"]["labels"]  # triage insists…
        assert "area: crash" not in label_names(gh, number)  # …the person's removal stands
        assert "P1" in label_names(gh, number)
        (example,) = [json.loads(line) for line in exported.splitlines() if line.strip()]
        assert example["id"] == f"gh:acme:widgets:{number}" and example["priority"] == "P1"
        assert example["repo"] == "acme/widgets"


def service_cli(svc: ServiceProcess, *args: str) -> str:
    """``ai-pipeline ARGS`` with the service's settings, on its files; standard output."""
    done = subprocess.run(
        [sys.executable, "-m", "ai_pipeline.cli", *args],
        env=svc.env,
        cwd=svc.workdir,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return done.stdout


def test_bots_pull_requests_and_other_repositories_are_ignored(tmp_path: Path) -> None:
    with run_fake_github(token=TOKEN) as gh:
        gh.private = False
        by_bot = gh.add_issue(
            "Bump lodash", "Dependency update", author="dependabot[bot]", author_type="Bot"
        )
        pull = gh.add_issue("Fix the crash", "A fix", author="alice", pull_request=True)
        person = gh.add_issue("Crash on save", CRASH_BODY, author="alice")
        elsewhere = issue_event(gh, "opened", person["number"])
        elsewhere["repository"] = {**elsewhere["repository"], "full_name": "other/repo"}
        labeled_by_us = issue_event(
            gh, "labeled", person["number"], sender=user("ai-pipeline[bot]", "Bot"), label="bug"
        )
        with ServiceProcess(tmp_path, app_env(gh)) as svc, svc.client() as client:
            outcomes = [
                deliver(svc.url, SECRET, event, payload).json()["outcome"]
                for event, payload in [
                    ("issues", issue_event(gh, "opened", by_bot["number"])),
                    ("issues", issue_event(gh, "opened", pull["number"])),
                    ("issues", elsewhere),
                    ("star", {"action": "created", "repository": elsewhere["repository"]}),
                    ("issues", labeled_by_us),
                ]
            ]
            total = client.get("/api/v1/requests", params={"status": "all"}).json()
            metrics = client.get("/metrics").text

        assert outcomes == [
            "ignored_bot",
            "ignored_pull_request",
            "ignored_repository",
            "ignored_event",
            "recorded",  # our own label: recorded as a fact, never as a person's correction
        ]
        assert total["pagination"]["total"] == 0
        assert (
            'ai_pipeline_github_webhooks_total{event="star",outcome="ignored_event"} 1.0' in metrics
        )
        assert gh.comments(person["number"]) == []


STORM = ["500", "502", "429", "secondary_rate_limit", "reset", "reset_after_create"]


@pytest.mark.timeout(900)
def test_300_issues_through_a_fault_storm_get_one_comment_each_and_the_right_labels(
    tmp_path: Path,
) -> None:
    with run_fake_github(token=TOKEN) as gh:
        gh.private = False
        gh.chaos(0.06, STORM, seed=20261203)
        # Comment creates stored, then their answers lost: the connection broken, or no
        # answer before the client's deadline.
        gh.reset_connection_next(times=15, method="POST", after_create=True, path="/comments")
        gh.delay_next(3.0, times=5, method="POST", path="/comments")
        payloads = opened_payloads(gh, 300)
        env = app_env(gh, AI_PIPELINE_RETRY_MAX_SECONDS="2")
        with ServiceProcess(tmp_path, env) as svc, svc.client() as client:
            sent = send_all(svc.url, payloads, rate=25)
            ids = [s.response["request_id"] for s in sent]
            final = wait_until_terminal(client, ids, timeout=720)
            log = svc.log()

        assert len(set(ids)) == 300
        check_acted_once_each(gh, final)
        # Comment creates were stored and their answers dropped, and still one comment each.
        assert gh.faults_left == 0
        assert {"500", "502", "429", "secondary_rate_limit", "reset"} <= set(gh.injected)
        assert "dead_lettered" not in log and TOKEN not in log and SECRET not in log


@pytest.mark.timeout(900)
def test_a_storm_survives_a_sigkill_mid_stream(tmp_path: Path) -> None:
    with run_fake_github(token=TOKEN) as gh:
        gh.private = False
        gh.chaos(0.05, STORM, seed=7)
        gh.reset_connection_next(times=10, method="POST", after_create=True, path="/comments")
        payloads = opened_payloads(gh, 300)
        svc = ServiceProcess(tmp_path, app_env(gh, AI_PIPELINE_RETRY_MAX_SECONDS="2")).start()
        sender = threading.Thread(target=send_all, args=(svc.url, payloads, 25))
        sender.start()
        gh.wait_for(lambda g: sum(len(ours(g, n)) for n, _ in payloads[:100]) >= 30, timeout=300)
        svc.kill()  # mid-stream: deliveries in flight get no answer and are sent again
        # A restart embeds every report not yet triaged to seed the duplicate index: on a
        # loaded 2-core box that takes minutes, not seconds.
        svc.start(timeout=300)
        sender.join(600)
        assert not sender.is_alive()
        # Every delivery again, as a person pressing "Redeliver" on each: same ids or not,
        # each issue is one request.
        resent = send_all(svc.url, payloads, rate=50)
        ids = sorted({s.response["request_id"] for s in resent})
        with svc.client() as client:
            final = wait_until_terminal(client, ids, timeout=720)
        svc.stop()

        assert len(ids) == 300
        check_acted_once_each(gh, final)
