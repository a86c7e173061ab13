"""A filed request's conversation, and what the reporter is told when."""

from __future__ import annotations

from datetime import timedelta

from ai_pipeline.domain import notify_plan
from ai_pipeline.domain.conversation import fold
from ai_pipeline.domain.loop_events import (
    IssueResolutionChanged,
    NeedsInfoReminded,
    ReporterReplied,
)
from ai_pipeline.domain.models import Notify
from ai_pipeline.domain.notifications import UNDER_REVIEW, Channel, NotifyEvent, webhook_body
from ai_pipeline.domain.resolution import CloseReason, closed, reopened
from tests.fakes.loop import conversation


def test_filed_notifies_each_channel_with_the_link_and_the_questions() -> None:
    c = conversation()
    sent = notify_plan.filed(c, c.filed_at)
    assert [(n.channel, n.event) for n in sent] == [
        (Channel.WEBHOOK, NotifyEvent.FILED),
        (Channel.EMAIL, NotifyEvent.FILED),
    ]
    webhook, email = sent
    assert webhook.target == "https://hooks.example.com/ai" and email.target == c.reporter
    assert webhook.issue_url == c.issue_url and webhook.issue_number == 7
    assert [q.split("?")[0] for q in webhook.questions] == [
        "What exact steps reproduce the problem",
        "Which version are you running, and on which operating system, browser or runtime",
    ]
    assert webhook.delivery_id != email.delivery_id


def test_planning_twice_gives_the_same_delivery_ids() -> None:
    c = conversation()
    first = [n.delivery_id for n in notify_plan.filed(c, c.filed_at)]
    again = [n.delivery_id for n in notify_plan.filed(c, c.filed_at + timedelta(minutes=5))]
    assert first == again


def test_a_private_report_is_told_only_that_it_was_received() -> None:
    c = conversation(security_sensitive=True)
    assert c.private
    (webhook, email) = notify_plan.filed(c, c.filed_at)
    for n in (webhook, email):
        assert n.issue_url is None and n.issue_number is None and n.questions == []
    body = webhook_body(webhook, reply_token="rt_x", reply_url="https://x")
    assert body["message"] == UNDER_REVIEW
    assert body["issue_url"] is None and body["questions"] == [] and "reply_token" not in body
    closed_now = fold(c, _closed(c, days=3))
    assert closed_now is not None
    assert notify_plan.resolved(closed_now, closed_now.updated_at) == []
    assert notify_plan.reminder(closed_now, closed_now.updated_at) == []


def test_nothing_is_planned_for_a_reporter_who_asked_for_nothing() -> None:
    c = conversation(notify=Notify())
    assert notify_plan.filed(c, c.filed_at) == []


def test_resolved_notifies_once_per_resolution_and_not_on_reopen() -> None:
    c = conversation()
    fixed = fold(c, _closed(c, days=2))
    assert fixed is not None
    sent = notify_plan.resolved(fixed, fixed.updated_at)
    assert {n.event for n in sent} == {NotifyEvent.RESOLVED}
    assert sent[0].resolution is not None and sent[0].resolution.state.value == "fixed"
    assert sent[0].questions == []  # an outcome asks nothing, though questions were open
    again = fold(
        fixed,
        IssueResolutionChanged(
            request_id=c.request_id,
            tracker="local",
            issue_number=7,
            resolution=reopened(c.filed_at + timedelta(days=3)),
            source="local",
        ),
    )
    assert again is not None and notify_plan.resolved(again, again.updated_at) == []
    closed_again = fold(again, _closed(c, days=4))
    assert closed_again is not None
    second = notify_plan.resolved(closed_again, closed_again.updated_at)
    assert {n.delivery_id for n in second}.isdisjoint({n.delivery_id for n in sent})


def test_replies_and_the_reminder_fold_once() -> None:
    c = conversation()
    replied = ReporterReplied(
        request_id=c.request_id,
        reply_id="r",
        at=c.filed_at + timedelta(days=1),
        answered=["environment"],
    )
    one = fold(c, replied)
    assert one is not None and one.remaining == ["steps_to_reproduce"] and one.needs_info
    assert fold(one, replied) is None
    reminded = NeedsInfoReminded(request_id=c.request_id, at=c.filed_at + timedelta(days=8))
    two = fold(one, reminded)
    assert two is not None and two.reminded_at == reminded.at
    assert fold(two, NeedsInfoReminded(request_id=c.request_id)) is None
    (webhook, _email) = notify_plan.reminder(two, reminded.at)
    assert webhook.event is NotifyEvent.NEEDS_INFO and webhook.reminder
    assert len(webhook.questions) == 1


def _closed(c: object, days: int) -> IssueResolutionChanged:
    at = conversation().filed_at + timedelta(days=days)
    return IssueResolutionChanged(
        request_id="r-1",
        tracker="local",
        issue_number=7,
        resolution=closed(CloseReason.COMPLETED, at),
        source="local",
    )
