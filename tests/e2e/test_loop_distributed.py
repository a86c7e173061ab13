"""Closing the loop on the distributed deployment (real Kafka, real Redis, the API with the
coordinator and notifier, and the tracker process that also delivers notifications): each
reporter hears that their issue was filed, and, once the request itself has expired from
Redis, still hears how the issue ended, through the one call GitHub's webhook receiver and
poller will make."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from ai_pipeline.bootstrap import bootstrap
from ai_pipeline.domain.events import utcnow
from ai_pipeline.domain.resolution import CloseReason, closed
from ai_pipeline.resolution import record_resolution
from ai_pipeline.settings import Settings
from tests.factories import report_dict
from tests.fakes.github_server import FakeGitHub, run_fake_github
from tests.fakes.webhook_receiver import WebhookReceiver
from tests.fleet import TOKEN, Fleet

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600)]
SECRET = "fleet-webhook-secret"
REPORTS = 5


def wait(check: Callable[[], object], what: str, seconds: float = 240.0) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, f"not within {seconds} s: {what}"
        time.sleep(0.2)


@pytest.fixture
def github() -> Iterator[FakeGitHub]:
    with run_fake_github(token=TOKEN) as gh:
        yield gh


def test_reporters_hear_back_on_kafka_and_redis_even_after_their_request_expired(
    tmp_path: Path,
    kafka_broker: Any,
    redis_server: Any,
    github: FakeGitHub,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    receiver = WebhookReceiver(SECRET.encode())
    env = {
        "AI_PIPELINE_NOTIFY_WEBHOOK_SECRET": SECRET,
        "AI_PIPELINE_NOTIFY_WEBHOOK_ALLOW_PRIVATE": "true",
        "AI_PIPELINE_NOTIFY_SWEEP_SECONDS": "0.5",
        # A finished request leaves Redis 20 s after it ended; its conversation stays.
        "AI_PIPELINE_STATE_TTL_SECONDS": "20",
    }
    fleet = Fleet(tmp_path, kafka_broker, redis_server, github, triage_agents=1, env=env)
    fleet.start(timeout=240)
    try:
        reports = [report_dict(notify={"webhook": receiver.url}) for _ in range(REPORTS)]
        accepted = fleet.submit(reports)
        wait(lambda: len(receiver.processed) == REPORTS, "a 'filed' webhook per report")
        filed = {b["request_id"]: b for b in receiver.processed.values()}
        assert set(filed) == set(accepted.values())
        assert {b["event"] for b in filed.values()} == {"filed"}
        assert all(
            "/issues/" in b["issue_url"] and b["resolution"]["state"] == "open"
            for b in filed.values()
        )

        rid = next(iter(filed))
        with fleet.client() as client:
            wait(
                lambda: client.get(f"/api/v1/requests/{rid}/status").status_code == 404,
                "the finished request expired from Redis",
                seconds=120,
            )
        number = int(filed[rid]["issue_url"].rstrip("/").rpartition("/")[2])

        # What GitHub's webhook receiver will do, from a process of its own.
        for name, value in fleet.env.items():
            monkeypatch.setenv(name, value)
        container = bootstrap(Settings(_env_file=None))  # type: ignore[call-arg]

        async def resolve() -> list[str]:
            await container.bus.start()
            try:
                return await record_resolution(
                    container.bus,
                    container.loop.store,
                    container.store,
                    tracker="github",
                    issue_number=number,
                    resolution=closed(CloseReason.COMPLETED, utcnow()),
                    source="github_webhook",
                )
            finally:
                await container.bus.close()
                await container.store.close()
                for close in container.loop.closers:
                    await close()

        assert asyncio.run(resolve()) == [rid]
        wait(lambda: len(receiver.processed) == REPORTS + 1, "the 'resolved' webhook")
        resolved = [b for b in receiver.processed.values() if b["event"] == "resolved"]
        assert [(b["request_id"], b["resolution"]["state"]) for b in resolved] == [(rid, "fixed")]
        assert receiver.duplicates == 0 and all(r.signed for r in receiver.received)
    except BaseException:
        print(fleet.logs())
        raise
    finally:
        fleet.stop()
        receiver.close()
