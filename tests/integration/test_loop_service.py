"""The loop with the reporter through the assembled service (SQLite, local tracker, every
agent in-process): replies answer questions, the local tracker's close and reopen flow back
into the request's resolution and the reporter's webhook, follow-up rules act on a fake
timeline, and a rebuild from the log restores it all."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from ai_pipeline.api.app import create_app
from ai_pipeline.bootstrap import Container, bootstrap, started
from ai_pipeline.domain.api_keys import hash_secret, new_key_id, new_secret
from ai_pipeline.domain.follow_up import ActionKind
from ai_pipeline.drafting.loop_text import ANSWERED
from ai_pipeline.ports import ApiKey
from ai_pipeline.rebuild import rebuild_state
from ai_pipeline.reporting import daily_report, today
from tests.conftest import make_settings
from tests.factories import report_dict
from tests.fakes.clock import FakeClock
from tests.fakes.webhook_receiver import WebhookReceiver

SECRET = "loop-webhook-secret"


def wait(check: Callable[[], object], seconds: float = 60.0) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.05)


class Service:
    def __init__(self, tmp_path: Path, **settings: Any):
        self.container: Container = bootstrap(
            make_settings(
                f"sqlite:///{tmp_path / 'p.db'}",
                notify_webhook_secret=SECRET,
                notify_webhook_allow_private=True,
                notify_sweep_seconds=0.1,
                **settings,
            )
        )
        self.client = TestClient(create_app(self.container), raise_server_exceptions=False)

    def submit(self, **overrides: Any) -> dict[str, Any]:
        # No steps and no environment: filed with two questions for the reporter.
        body = report_dict(steps_to_reproduce=None, environment=None, **overrides)
        accepted: dict[str, Any] = self.client.post("/api/v1/bug-reports", json=body).json()
        wait(lambda: self.status(accepted["request_id"])["status"] == "completed")
        wait(lambda: self.call(self.container.loop.store.get_conversation, accepted["request_id"]))
        return accepted

    def status(self, rid: str) -> dict[str, Any]:
        doc: dict[str, Any] = self.client.get(f"/api/v1/requests/{rid}/status").json()
        return doc

    def issue(self, rid: str) -> dict[str, Any]:
        number = self.status(rid)["github_issue_number"]
        issue: dict[str, Any] = self.client.get(f"/api/v1/issues/{number}").json()
        return issue

    def reply(self, rid: str, text: str, token: str | None, **headers: str) -> Any:
        if token is not None:
            headers["X-Reply-Token"] = token
        return self.client.post(
            f"/api/v1/requests/{rid}/replies", json={"text": text}, headers=headers
        )

    def call(self, fn: Callable[..., Any], *args: Any) -> Any:
        assert self.client.portal is not None
        return self.client.portal.call(fn, *args)


@pytest.fixture
def service(tmp_path: Path) -> Iterator[Service]:
    s = Service(tmp_path)
    with s.client:
        yield s


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    hook = WebhookReceiver(SECRET.encode())
    yield hook
    hook.close()


def reply_comments(issue: dict[str, Any]) -> list[dict[str, Any]]:
    return [c for c in issue["comments"] if ":reply:" in c["request_id"]]


def test_a_reply_answers_the_questions_once_and_needs_info_goes(service: Service) -> None:
    accepted = service.submit()
    rid, token = accepted["request_id"], accepted["reply_token"]
    doc = service.status(rid)
    assert doc["resolution"]["state"] == "open"
    assert doc["needs_info"]["questions"] == ["steps_to_reproduce", "environment"]
    assert "needs-info" in service.issue(rid)["labels"]

    wrong = service.reply(rid, "Ubuntu 24.04", token[:-2] + "xx")
    assert wrong.status_code == 401 and wrong.json()["error"]["code"] == "UNAUTHORIZED"
    first = service.reply(rid, "It happens on Ubuntu 24.04", token)
    assert first.status_code == 202
    assert [q.split("?")[0] for q in first.json()["questions_remaining"]] == [
        "What exact steps reproduce the problem"
    ]
    retried = service.reply(rid, "It happens on Ubuntu 24.04", token)  # a client's retry
    assert retried.json()["reply_id"] == first.json()["reply_id"]
    wait(lambda: service.status(rid)["needs_info"]["answered"] == ["environment"])
    assert len(reply_comments(service.issue(rid))) == 1
    assert "needs-info" in service.issue(rid)["labels"]

    second = service.reply(rid, "1. Open a 2 GB file\n2. Press Ctrl+S", token)
    assert second.status_code == 202 and second.json()["questions_remaining"] == []
    wait(lambda: service.status(rid)["needs_info"]["answered_at"] is not None)
    issue = service.issue(rid)
    assert len(reply_comments(issue)) == 2
    assert "needs-info" not in issue["labels"] and issue["body"].count(ANSWERED) == 2
    assert len(service.status(rid)["needs_info"]["reply_ids"]) == 2


def test_a_hostile_reply_is_redacted_and_neutralised_on_the_issue(service: Service) -> None:
    accepted = service.submit()
    rid = accepted["request_id"]
    token = "ghp_" + "Zz9Yy8Xx7" * 4
    text = (
        f"token={token} mail eve@example.com @maintainers [x](javascript:alert(1)) <script>"
        "\n## Triage\n<!-- ai-pipeline:request=other -->"
    )
    assert service.reply(rid, text, accepted["reply_token"]).status_code == 202
    wait(lambda: reply_comments(service.issue(rid)))
    (comment,) = reply_comments(service.issue(rid))
    body = comment["body"]
    assert token not in body and "eve@example.com" not in body
    assert "@\u200bmaintainers" in body and "<script>" not in body
    assert "\\[x\\]" in body and "\\## Triage" in body
    assert "ai-pipeline:\u200brequest=other" in body


def test_replies_take_the_token_or_a_key_that_may_submit(service: Service) -> None:
    accepted = service.submit()
    rid = accepted["request_id"]
    keys = {}
    for scope in ("submit", "read"):
        secret = new_secret()
        key = ApiKey(new_key_id(), scope, frozenset({scope}), time.time())
        service.call(service.container.keys.add, key, hash_secret(secret))
        keys[scope] = secret
    # Until the key cache sees the keys (a read route asks for one then).
    wait(lambda: service.client.get(f"/api/v1/requests/{rid}/status").status_code == 401)
    anonymous = service.reply(rid, "Windows 11", None)
    assert anonymous.json()["error"]["code"] == "UNAUTHORIZED"
    assert service.reply(rid, "Windows 11", None, **{"X-API-Key": keys["read"]}).status_code == 403
    assert (
        service.reply(rid, "Windows 11", None, **{"X-API-Key": keys["submit"]}).status_code == 202
    )
    assert service.reply(rid, "macOS 14", accepted["reply_token"]).status_code == 202
    assert service.reply(rid, "macOS 14", "rt_forged").status_code == 401
    assert (
        service.reply("no-such-request", "hello", None, **{"X-API-Key": keys["submit"]}).status_code
        == 404
    )


def test_a_report_may_send_only_so_many_replies_an_hour(tmp_path: Path) -> None:
    s = Service(tmp_path, replies_per_request_per_hour=2)
    with s.client:
        accepted = s.submit()
        rid, token = accepted["request_id"], accepted["reply_token"]
        assert [s.reply(rid, f"answer {n}", token).status_code for n in range(2)] == [202, 202]
        third = s.reply(rid, "answer 3", token)
        assert third.status_code == 429
        assert third.json()["error"]["code"] == "RATE_LIMIT_EXCEEDED"
        assert third.headers["X-RateLimit-Limit"] == "2" and int(third.headers["Retry-After"]) > 0
        other = s.submit()  # another report has its own allowance
        assert s.reply(other["request_id"], "answer", other["reply_token"]).status_code == 202


def test_closing_and_reopening_flow_back_into_the_resolution_and_the_webhook(
    service: Service, receiver: WebhookReceiver
) -> None:
    accepted = service.submit(notify={"webhook": receiver.url})
    rid = accepted["request_id"]
    number = service.status(rid)["github_issue_number"]
    other = service.submit()
    other_number = service.status(other["request_id"])["github_issue_number"]

    def resolution() -> dict[str, Any]:
        return dict(service.status(rid)["resolution"])

    close = service.client.post(f"/api/v1/issues/{number}/close", json={"reason": "completed"})
    assert close.status_code == 200 and close.json()["requests"] == [rid]
    assert close.json()["state_reason"] == "completed"
    wait(lambda: resolution()["state"] == "fixed")
    again = service.client.post(f"/api/v1/issues/{number}/close", json={"reason": "completed"})
    assert again.json()["changed"] is False
    service.client.post(f"/api/v1/issues/{number}/reopen")
    wait(lambda: resolution()["state"] == "reopened")
    dup = service.client.post(
        f"/api/v1/issues/{number}/close",
        json={"reason": "duplicate", "duplicate_of": other_number},
    )
    assert dup.status_code == 200
    wait(lambda: resolution()["state"] == "duplicate")
    assert resolution()["duplicate_issue_number"] == other_number

    wait(lambda: len(receiver.processed) == 3)
    events = sorted(
        (body["event"], (body["resolution"] or {}).get("state"))
        for body in receiver.processed.values()
    )
    assert events == [("filed", "open"), ("resolved", "duplicate"), ("resolved", "fixed")]
    assert receiver.duplicates == 0 and all(r.signed for r in receiver.received)

    figures = service.client.get("/api/v1/metrics?period=24h").json()["resolution"]
    assert figures["resolved"] == 1 and figures["duplicate"] == 1 and figures["fixed"] == 0
    assert figures["share_fixed"] == 0.0 and figures["unresolved"] == 1
    assert figures["time_to_resolution_seconds"]["samples"] == 1

    def daily() -> dict[str, Any]:
        report = service.call(daily_report, service.container.store, today())
        return {} if report is None else dict(report.figures())

    wait(lambda: daily().get("issues_resolved") == 2)  # fixed, then duplicate
    assert daily()["issues_fixed"] == 1 and daily()["fixed_share"] == 0.5

    bad = service.client.post(f"/api/v1/issues/{number}/close", json={"reason": "fixed"})
    assert bad.status_code == 422
    assert service.client.post("/api/v1/issues/999/close", json={}).status_code == 404


def test_a_rebuild_from_the_log_restores_resolutions_and_conversations(tmp_path: Path) -> None:
    first = Service(tmp_path)
    with first.client:
        accepted = first.submit()
        rid = accepted["request_id"]
        number = first.status(rid)["github_issue_number"]
        first.client.post(f"/api/v1/issues/{number}/close", json={"reason": "not_planned"})
        assert first.reply(rid, "Ubuntu 24.04", accepted["reply_token"]).status_code == 202
        wait(lambda: first.status(rid)["needs_info"]["answered"] == ["environment"])
        wait(lambda: first.status(rid)["resolution"]["state"] == "not_planned")
        before = first.status(rid)
        conversation = first.call(first.container.loop.store.get_conversation, rid)
    # A fresh state store beside the same log (the runbook's flush and rebuild).
    settings = first.container.settings.model_copy(
        update={"state": f"sqlite:///{tmp_path / 'fresh.db'}"}
    )

    async def rebuild() -> Any:
        async with started(settings) as fresh:
            report = await rebuild_state(fresh.bus, fresh.store, loop=fresh.loop)
            return report, await fresh.store.get(rid), await fresh.loop.store.get_conversation(rid)

    report, state, restored = asyncio.run(rebuild())
    assert report.conversations >= 1
    assert state is not None and state.public_view()["resolution"] == before["resolution"]
    assert state.public_view()["needs_info"] == before["needs_info"]
    assert restored == conversation


def test_follow_up_reminds_once_and_closes_only_what_no_maintainer_touched(
    tmp_path: Path, receiver: WebhookReceiver
) -> None:
    s = Service(tmp_path, needs_info_remind_days=7, needs_info_close_days=14)
    with s.client:
        quiet = s.submit(notify={"webhook": receiver.url})["request_id"]
        watched = s.submit()["request_id"]
        follow = s.container.loop.follow_ups
        clock = FakeClock()
        follow.clock = clock
        clock.now = s.call(s.container.loop.store.get_conversation, quiet).filed_at

        clock.advance(days=8)
        planned = s.call(follow.run, True)
        assert sorted((a.kind, a.request_id) for a in planned) == sorted(
            [(ActionKind.REMIND, quiet), (ActionKind.REMIND, watched)]
        )
        # A dry run changes nothing: no comment, no reminder recorded.
        assert all(c["request_id"].count(":") == 0 for c in s.issue(quiet)["comments"])
        assert s.call(s.container.loop.store.get_conversation, quiet).reminded_at is None

        assert len(s.call(follow.run, False)) == 2
        for rid in (quiet, watched):
            wait(lambda rid=rid: s.call(s.container.loop.store.get_conversation, rid).reminded_at)
        assert s.call(follow.run, False) == []  # reminded once
        for rid in (quiet, watched):
            assert [c["request_id"] for c in s.issue(rid)["comments"]] == [f"{rid}:remind"]
        wait(lambda: any(b["event"] == "needs_info" for b in receiver.processed.values()))
        reminder = next(b for b in receiver.processed.values() if b["event"] == "needs_info")
        assert reminder["reminder"] is True and len(reminder["questions"]) == 2

        # A maintainer speaks on one issue after our reminder: it is never closed.
        number = s.status(watched)["github_issue_number"]
        said = s.client.post(f"/api/v1/issues/{number}/comments", json={"body": "Looking at it"})
        assert said.status_code == 201
        clock.advance(days=7)
        dry = {a.request_id: a for a in s.call(follow.run, True)}
        assert dry[quiet].kind is ActionKind.CLOSE and dry[watched].kind is ActionKind.KEEP
        assert s.status(quiet)["resolution"]["state"] == "open"
        s.call(follow.run, False)
        wait(lambda: s.status(quiet)["resolution"]["state"] == "not_planned")
        assert s.issue(quiet)["state"] == "closed"
        assert s.issue(quiet)["state_reason"] == "not_planned"
        assert s.issue(watched)["state"] == "open"
        assert s.status(watched)["resolution"]["state"] == "open"
        wait(lambda: any(b["event"] == "resolved" for b in receiver.processed.values()))
        clock.advance(days=30)
        assert [a.kind for a in s.call(follow.run, True)] == [ActionKind.KEEP]
