"""The distributed deployment under faults: real Kafka, real Redis, real agent processes.

Each test sends 1,000 reports through an API process, three triage agents in one consumer
group, a ticket-creation agent and a tracker agent filing on a GitHub-shaped server, and
breaks something mid-stream. Every report must become exactly one issue.
"""

from __future__ import annotations

import subprocess
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from confluent_kafka import Producer

from ai_pipeline.drafting.marker import request_id_in
from tests.factories import report_dict
from tests.fakes.github_server import FakeGitHub
from tests.fleet import Fleet

# 1,000 reports through six processes with a fault in the middle, every report now
# embedded (about 35 ms of CPU each): one such run took 287 s on a loaded 2-core box.
TEST_TIMEOUT = 600
pytestmark = [pytest.mark.e2e, pytest.mark.timeout(TEST_TIMEOUT)]

REPORTS = 1000


@pytest.fixture
def fleet(start_fleet: Callable[..., Fleet]) -> Fleet:
    return start_fleet(triage_agents=3)


def run_through(fleet: Fleet, github: FakeGitHub, fault: Callable[[], None]) -> dict[str, str]:
    """Send REPORTS reports; once a fifth is filed, inject ``fault``; wait for the end."""
    began = time.monotonic()
    reports = [report_dict() for _ in range(REPORTS)]
    accepted: dict[str, str] = {}
    failures: list[BaseException] = []

    def send() -> None:
        try:
            accepted.update(fleet.submit(reports))
        except BaseException as error:  # reported below, with the fleet's logs
            failures.append(error)

    sender = threading.Thread(target=send)
    sender.start()
    # Well inside the test's own timeout, so a stuck fleet fails with its logs attached.
    started = github.wait_for(lambda gh: len(gh.issues) >= REPORTS // 5, timeout=220)
    assert started, f"{failures}\n{fleet.logs()}"
    fault()
    sender.join(600)
    assert not failures, f"{failures}\n{fleet.logs()}"
    assert len(accepted) == REPORTS
    # Ends before the test's own timeout, so a stall reports what is stuck and the logs.
    fleet.wait_all_done(REPORTS, timeout=TEST_TIMEOUT - 30 - (time.monotonic() - began))
    return accepted


def assert_exactly_one_issue_each(
    fleet: Fleet, github: FakeGitHub, accepted: dict[str, str]
) -> None:
    states = {s["request_id"]: s for s in fleet.all_requests()}
    failed = {rid: s["error_message"] for rid, s in states.items() if s["status"] != "completed"}
    assert failed == {}
    assert set(states) == set(accepted.values())
    filed = Counter(request_id_in(issue["body"]) for issue in github.issues)
    twice = {rid: n for rid, n in filed.items() if n > 1}
    assert twice == {}
    assert set(filed) == set(accepted.values())
    assert len(github.issues) == REPORTS
    for rid, state in states.items():
        assert state["github_issue_number"] is not None, rid


def test_a_triage_agent_killed_mid_stream_loses_nothing(fleet: Fleet, github: FakeGitHub) -> None:
    victim = fleet.agents["triage"][0]
    accepted = run_through(fleet, github, victim.kill)
    assert_exactly_one_issue_each(fleet, github, accepted)


@pytest.mark.parametrize("service", ["kafka_broker", "redis_server"])
def test_a_restart_of_the_broker_or_redis_mid_stream_loses_nothing(
    fleet: Fleet, github: FakeGitHub, service: str, request: pytest.FixtureRequest
) -> None:
    dependency = request.getfixturevalue(service)

    def restart() -> None:
        dependency.stop()
        time.sleep(2)
        dependency.start()

    accepted = run_through(fleet, github, restart)
    assert_exactly_one_issue_each(fleet, github, accepted)


def test_flushdb_and_a_rebuild_restore_every_state(
    fleet: Fleet, github: FakeGitHub, redis_server: Any
) -> None:
    accepted = run_through(fleet, github, lambda: None)
    before = fleet.all_requests()
    assert len(before) == REPORTS
    redis_server.command("FLUSHDB")  # the runbook's emergency procedure
    assert fleet.count("all") == 0
    rebuilt = fleet.cli("state", "rebuild")
    assert rebuilt.returncode == 0, rebuilt.stderr[-3000:]
    assert f"rebuilt {REPORTS} requests" in rebuilt.stdout
    assert fleet.all_requests() == before
    # The ledger came back too: redelivered drafts find their issue, none is filed twice.
    assert_exactly_one_issue_each(fleet, github, accepted)


def test_a_malformed_message_is_dead_lettered_and_the_rest_flows(
    fleet: Fleet, github: FakeGitHub, kafka_broker: Any
) -> None:
    raw = Producer({"bootstrap.servers": kafka_broker.bootstrap})
    raw.produce(f"{fleet.prefix}bug-reports", key=b"not-a-request", value=b'{"kind": "??"')
    raw.flush(10)
    reports = [report_dict() for _ in range(50)]
    accepted = fleet.submit(reports)
    fleet.wait_all_done(len(reports))
    dead = fleet.cli("dead-letters", "--json")
    assert dead.returncode == 0, dead.stderr[-3000:]
    assert '"key": "not-a-request"' in dead.stdout
    assert "undecodable message" in dead.stdout
    assert fleet.count("completed") == len(reports)
    assert {request_id_in(i["body"]) for i in github.issues} == set(accepted.values())
    # Health: the API process sees the broker, Redis and each group's live members.
    with fleet.client() as client:
        health = client.get("/api/v1/health").json()
    components = health["components"]
    assert components["kafka"]["status"] == "healthy" and components["kafka"]["brokers"] == 1
    assert components["redis"]["status"] == "healthy"
    assert components["triage_agent"] == {
        "status": "healthy",
        "state": "remote",
        "group": "triage-agent-group",
        "members": 3,
    }
    assert components["coordinator_agent"]["state"] == "running"
    # Each agent process serves its own health and metrics.
    triage = fleet.agents["triage"][1]
    own = httpx.get(f"{triage.url}/health", timeout=10).json()
    assert own["agents_in_this_process"] == ["triage_agent"]
    assert set(own["components"]) >= {"triage_agent", "kafka", "redis"}
    assert "ticket_creation_agent" not in own["components"]
    metrics = httpx.get(f"{triage.url}/metrics", timeout=10).text
    assert 'ai_pipeline_agent_handled_total{agent="triage_agent"}' in metrics
    assert 'kafka_consumer_lag_sum{group="triage-agent-group",topic="bug-reports"} 0.0' in metrics
    # The runbook's consumer-group command, as an operator types it.
    described = subprocess.run(
        [
            "scripts/kafka-consumer-groups.sh",
            "--bootstrap-server",
            kafka_broker.bootstrap,
            "--describe",
            "--group",
            f"{fleet.prefix}triage-agent-group",
        ],
        cwd=Path(__file__).resolve().parents[2],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    rows = [
        line.split()
        for line in described.stdout.splitlines()
        if f"{fleet.prefix}bug-reports" in line
    ]
    assert len(rows) == 6  # one row per partition of bug-reports
    assert all(row[5] == "0" for row in rows)  # LAG column: nothing left behind
