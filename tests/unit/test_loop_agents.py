"""The notifier and reply agents against the embedded adapters: conversations started and
folded once, notifications planned with stable ids, replies posted exactly once."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest

from ai_pipeline.adapters.bus.sqlite import SqliteBus
from ai_pipeline.adapters.loop.sqlite import SqliteLoopStore
from ai_pipeline.adapters.sqlite_db import SqliteDatabase
from ai_pipeline.adapters.state.sqlite import SqliteStateStore
from ai_pipeline.adapters.trackers.local import LocalTracker
from ai_pipeline.adapters.trackers.local_conversation import LocalConversationTracker
from ai_pipeline.agents.notifier import NotifierAgent
from ai_pipeline.agents.replies import ReplyAgent
from ai_pipeline.domain.errors import TransientError
from ai_pipeline.domain.events import Step, StepChanged, StepStatus, decode
from ai_pipeline.domain.loop_events import IssueResolutionChanged, ReplyReceived, ReporterReplied
from ai_pipeline.domain.models import FiledIssue, IssueDraft
from ai_pipeline.domain.notifications import Notification, NotifyEvent
from ai_pipeline.domain.redaction import Redactor
from ai_pipeline.domain.replies import ReplyRecord, comment_key, reply_id
from ai_pipeline.domain.request_state import new_request
from ai_pipeline.domain.resolution import CloseReason, closed
from ai_pipeline.drafting.loop_text import ANSWERED, reply_comment
from ai_pipeline.drafting.template import render
from ai_pipeline.observability.metrics import Metrics
from ai_pipeline.ports import OutgoingMessage
from tests.factories import report, triage
from tests.fakes.clock import FakeClock

pytestmark = pytest.mark.anyio
QUESTIONS = ["steps_to_reproduce", "environment"]


class Rig:
    def __init__(self, path: Path):
        self.db = SqliteDatabase(path)
        self.bus = SqliteBus(self.db, {"t": 1})
        self.store = SqliteStateStore(self.db, self.bus, same_file_bus=self.bus)
        self.loop = SqliteLoopStore(self.db)
        self.tracker = LocalTracker(self.db, "http://localhost:8000")
        self.local = LocalConversationTracker(self.tracker)
        self.metrics = Metrics()
        self.clock = FakeClock()
        self.notifier = NotifierAgent(self.store, self.loop, self.metrics, self.clock)
        self.replies = ReplyAgent(
            self.loop, {"local": self.tracker}, {"local": self.local}, Redactor(), self.metrics
        )

    async def filed(self, rid: str) -> StepChanged:
        """A report with two questions, triaged and filed on the local tracker."""
        r = report(notify={"webhook": "https://hooks.example.com/x", "email": True})
        await self.store.create_request(new_request(rid, r.id, self.clock.now), r, None)
        data = {"missing_information": QUESTIONS, "security_sensitive": False}
        await self.store.apply(
            StepChanged(request_id=rid, step=Step.TRIAGE, status=StepStatus.COMPLETED, data=data)
        )
        draft = render(rid, r, triage(missing_information=QUESTIONS, labels=["bug", "needs-info"]))
        issue = await self.tracker.create_issue(rid, IssueDraft(**draft.model_dump()))
        filing = StepChanged(
            request_id=rid,
            step=Step.GITHUB,
            status=StepStatus.COMPLETED,
            at=self.clock.now,
            data={"tracker": "local", "private": False},
            issue=FiledIssue(number=issue.number, url=issue.url),
        )
        await self.store.apply(filing)
        return filing


@pytest.fixture
async def rig(tmp_path: Path) -> AsyncIterator[Rig]:
    r = Rig(tmp_path / "p.db")
    await r.bus.start()
    await r.store.start()
    try:
        yield r
    finally:
        await r.db.close()


def notifications(outputs: object) -> list[Notification]:
    found = [decode(m.value) for m in outputs]  # type: ignore[attr-defined]
    return [n for n in found if isinstance(n, Notification)]


async def test_a_filing_starts_one_conversation_and_plans_the_same_ids_when_redelivered(
    rig: Rig,
) -> None:
    filing = await rig.filed("r-1")
    first = notifications(await rig.notifier.handle(filing))
    assert [(n.channel.value, n.event) for n in first] == [
        ("webhook", NotifyEvent.FILED),
        ("email", NotifyEvent.FILED),
    ]
    conversation = await rig.loop.get_conversation("r-1")
    assert conversation is not None and conversation.questions == QUESTIONS
    rig.clock.advance(minutes=5)
    again = notifications(await rig.notifier.handle(filing))
    assert [n.delivery_id for n in again] == [n.delivery_id for n in first]
    assert await rig.loop.get_conversation("r-1") == conversation


async def test_a_resolution_is_counted_once_and_its_notification_planned_again_on_redelivery(
    rig: Rig,
) -> None:
    await rig.notifier.handle(await rig.filed("r-1"))
    change = IssueResolutionChanged(
        request_id="r-1",
        tracker="local",
        issue_number=1,
        resolution=closed(CloseReason.COMPLETED, rig.clock.now + timedelta(days=3)),
        source="local",
    )
    first = notifications(await rig.notifier.handle(change))
    again = notifications(await rig.notifier.handle(change))
    assert {n.event for n in first} == {NotifyEvent.RESOLVED}
    assert [n.delivery_id for n in again] == [n.delivery_id for n in first]
    resolved = rig.metrics.registry.get_sample_value(
        "ai_pipeline_issues_resolved_total", {"resolution": "fixed"}
    )
    assert resolved == 1.0
    seconds = rig.metrics.registry.get_sample_value("ai_pipeline_time_to_resolution_seconds_sum")
    assert seconds == 3 * 86400


def reply(rid: str, text: str) -> ReplyReceived:
    return ReplyReceived(request_id=rid, reply_id=reply_id(rid, text), text=text, by="reporter")


def replied(outputs: list[OutgoingMessage]) -> ReporterReplied:
    (message,) = outputs
    event = decode(message.value)
    assert isinstance(event, ReporterReplied)
    return event


async def test_a_reply_is_posted_once_however_often_it_comes(rig: Rig) -> None:
    await rig.notifier.handle(await rig.filed("r-1"))
    event = reply("r-1", "It happens on Ubuntu 24.04")
    out = replied(list(await rig.replies.handle(event)))
    assert out.answered == ["environment"] and out.comment_url
    replied(list(await rig.replies.handle(event)))
    issue = rig.tracker.get_issue(1)
    assert issue is not None
    assert [c["request_id"] for c in issue.comments] == [comment_key("r-1", event.reply_id)]
    assert "needs-info" in issue.labels  # one question is still open


async def test_a_reply_posted_just_before_a_crash_is_found_not_posted_again(rig: Rig) -> None:
    await rig.notifier.handle(await rig.filed("r-1"))
    event = reply("r-1", "Steps: 1. open 2. save")
    key = comment_key("r-1", event.reply_id)
    # The process died after the comment and before the ledger said "posted".
    await rig.loop.put_reply(
        ReplyRecord(
            reply_id=event.reply_id, request_id="r-1", text=event.text, at=event.at, by="reporter"
        )
    )
    await rig.tracker.add_comment(key, 1, reply_comment(key, event.text, Redactor()))
    replied(list(await rig.replies.handle(event)))
    issue = rig.tracker.get_issue(1)
    assert issue is not None and [c["request_id"] for c in issue.comments] == [key]


async def test_answering_every_question_drops_needs_info_and_marks_the_body(rig: Rig) -> None:
    await rig.notifier.handle(await rig.filed("r-1"))
    await rig.replies.handle(reply("r-1", "Ubuntu 24.04"))
    await rig.replies.handle(reply("r-1", "1. Open a 2 GB file\n2. Press Ctrl+S"))
    issue = rig.tracker.get_issue(1)
    assert issue is not None
    assert "needs-info" not in issue.labels and issue.body.count(ANSWERED) == 2
    view = await rig.local.issue_view(1)
    assert view is not None
    assert [a.actor.value for a in view.activity] == ["reporter", "reporter", "us", "us"]


async def test_a_reply_that_comes_before_the_filing_is_recorded_waits(rig: Rig) -> None:
    with pytest.raises(TransientError, match="no filed issue yet"):
        await rig.replies.handle(reply("r-unknown", "hello"))
