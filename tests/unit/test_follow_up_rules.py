"""Follow-up rules on a fake timeline: remind once, close only when the last word is ours."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from ai_pipeline.domain.conversation import Conversation
from ai_pipeline.domain.follow_up import (
    Action,
    ActionKind,
    Activity,
    Actor,
    IssueView,
    Policy,
    decide,
)
from ai_pipeline.domain.resolution import CloseReason, closed
from tests.fakes.loop import conversation

POLICY = Policy.from_days(7, 14, ["pinned"])


def view(
    *activity: Activity, labels: tuple[str, ...] = ("bug", "needs-info"), open: bool = True
) -> IssueView:
    return IssueView(open=open, labels=frozenset(labels), activity=tuple(activity))


def day(c: Conversation, n: float) -> datetime:
    return c.filed_at + timedelta(days=n)


def kind(action: Action | None) -> ActionKind | None:
    return None if action is None else action.kind


def reminded(c: Conversation, n: float = 7) -> Conversation:
    return c.model_copy(update={"reminded_at": day(c, n)})


def test_the_reporter_is_reminded_once_after_the_remind_days() -> None:
    c = conversation()
    assert decide(c, view(), POLICY, day(c, 6.9)) is None
    action = decide(c, view(), POLICY, day(c, 7))
    assert kind(action) is ActionKind.REMIND and action is not None
    assert (action.request_id, action.issue_number) == (c.request_id, 7)
    ours = Activity(day(c, 7), Actor.US, "comment")
    assert decide(reminded(c), view(ours), POLICY, day(c, 8)) is None


def test_a_reply_starts_the_wait_again() -> None:
    c = conversation().model_copy(update={"last_reply_at": None})
    c = c.model_copy(update={"last_reply_at": day(c, 5), "answered": ["environment"]})
    assert decide(c, view(), POLICY, day(c, 11)) is None
    assert kind(decide(c, view(), POLICY, day(c, 12))) is ActionKind.REMIND


def test_close_comes_after_the_close_days_when_the_last_word_is_ours() -> None:
    c = reminded(conversation())
    timeline = view(Activity(day(c, 7), Actor.US, "comment"))
    assert decide(c, timeline, POLICY, day(c, 13.9)) is None
    assert kind(decide(c, timeline, POLICY, day(c, 14))) is ActionKind.CLOSE


def test_a_maintainers_comment_after_our_last_word_keeps_the_issue_open() -> None:
    c = reminded(conversation())
    timeline = view(
        Activity(day(c, 7), Actor.US, "comment"), Activity(day(c, 9), Actor.MAINTAINER, "comment")
    )
    action = decide(c, timeline, POLICY, day(c, 30))
    assert kind(action) is ActionKind.KEEP and action is not None
    assert "maintainer" in action.reason


def test_a_maintainers_label_after_our_last_word_keeps_it_open_too() -> None:
    c = reminded(conversation())
    timeline = view(
        Activity(day(c, 7), Actor.US, "comment"), Activity(day(c, 8), Actor.MAINTAINER, "labeled")
    )
    assert kind(decide(c, timeline, POLICY, day(c, 30))) is ActionKind.KEEP


def test_a_maintainer_before_our_reminder_does_not_hold_the_close() -> None:
    c = reminded(conversation())
    timeline = view(
        Activity(day(c, 2), Actor.MAINTAINER, "comment"), Activity(day(c, 7), Actor.US, "comment")
    )
    assert kind(decide(c, timeline, POLICY, day(c, 14))) is ActionKind.CLOSE


def test_an_exempt_label_keeps_the_issue_open_whatever_the_case() -> None:
    c = reminded(conversation())
    action = decide(c, view(labels=("bug", "Pinned")), POLICY, day(c, 30))
    assert kind(action) is ActionKind.KEEP and action is not None and "pinned" in action.reason


def test_nothing_is_done_when_closing_is_off() -> None:
    c = reminded(conversation())
    assert decide(c, view(), Policy.from_days(7, None), day(c, 365)) is None


def test_nothing_is_done_to_a_closed_an_answered_or_a_commented_issue() -> None:
    c = conversation()
    assert decide(c, view(open=False), POLICY, day(c, 30)) is None
    answered = c.model_copy(update={"answered": list(c.questions)})
    assert decide(answered, view(), POLICY, day(c, 30)) is None
    resolved = c.model_copy(update={"resolution": closed(CloseReason.COMPLETED, day(c, 1))})
    assert decide(resolved, view(), POLICY, day(c, 30)) is None
    comment = c.model_copy(update={"filed_as": "comment"})
    assert decide(comment, view(), POLICY, day(c, 30)) is None


def test_closing_before_the_reminder_is_refused() -> None:
    with pytest.raises(ValueError, match="after the reminder"):
        Policy.from_days(7, 5)
