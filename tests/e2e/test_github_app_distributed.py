"""The GitHub App mode distributed: real Kafka, real Redis, an API process per replica and one
process per agent, the GitHub-shaped fake over HTTP.

- The same delivery sent to two API replicas at once, again and again: one request, one
  comment (the first pass's id is claimed atomically in Redis).
- 300 issues through webhooks in a fault storm: one comment each, the right labels.
"""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from tests.fakes.github_server import FakeGitHub, run_fake_github
from tests.fakes.github_webhooks import deliver, issue_event
from tests.fleet import Fleet
from tests.github_app import (
    CRASH_BODY,
    SECRET,
    TOKEN,
    app_env,
    check_acted_once_each,
    opened_payloads,
    send_all,
)
from tests.service import ServiceProcess, wait_until_terminal

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(900)]

STORM = ["500", "502", "429", "secondary_rate_limit", "reset", "reset_after_create"]


@pytest.fixture
def github() -> Iterator[FakeGitHub]:
    with run_fake_github(token=TOKEN) as gh:
        gh.private = False
        yield gh


@pytest.fixture
def fleet(
    tmp_path: Path, kafka_broker: Any, redis_server: Any, github: FakeGitHub
) -> Iterator[Fleet]:
    env = app_env(github, AI_PIPELINE_RETRY_MAX_SECONDS="2")
    fleet = Fleet(tmp_path, kafka_broker, redis_server, github, triage_agents=1, env=env)
    fleet.start(timeout=300)
    try:
        yield fleet
    finally:
        fleet.stop()


def test_one_delivery_to_two_api_replicas_at_once_acts_once(
    tmp_path: Path, fleet: Fleet, github: FakeGitHub
) -> None:
    replica = ServiceProcess(tmp_path, fleet.env, ["serve", "--role", "api"]).start(300)
    try:
        issue = github.add_issue("Crash when saving with an emoji", CRASH_BODY, author="alice")
        payload = issue_event(github, "opened", issue["number"])
        urls = [fleet.api.url, replica.url] * 4  # the same delivery, eight times at once
        with ThreadPoolExecutor(len(urls)) as pool:
            answers = list(
                pool.map(lambda url: deliver(url, SECRET, "issues", payload, delivery="d-1"), urls)
            )
        assert [a.status_code for a in answers] == [202] * len(urls)
        ids = {a.json()["request_id"] for a in answers} - {None}
        assert len(ids) == 1, answers
        with fleet.client() as client:
            final = wait_until_terminal(client, sorted(ids), timeout=300)
            total = client.get("/api/v1/requests", params={"status": "all"}).json()
        assert total["pagination"]["total"] == 1
        check_acted_once_each(github, final)
        assert len(github.comments(issue["number"])) == 1
    finally:
        replica.stop()


def test_300_issues_through_a_fault_storm_on_kafka_and_redis(
    fleet: Fleet, github: FakeGitHub
) -> None:
    github.chaos(0.05, STORM, seed=31)
    github.reset_connection_next(times=10, method="POST", after_create=True, path="/comments")
    payloads = opened_payloads(github, 300)
    sent = send_all(fleet.api.url, payloads, rate=20)
    ids = [s.response["request_id"] for s in sent]
    assert len(set(ids)) == 300
    fleet.wait_all_done(300, timeout=800)
    with fleet.client() as client:
        final = wait_until_terminal(client, ids, timeout=60)
    check_acted_once_each(github, final)
    assert github.faults_left == 0
    assert "dead_lettered" not in fleet.logs()
