"""Follow-up of unanswered questions that does not annoy. Pure: the time is given.

- **Remind once**: when the questions filed with an issue are still open
  ``remind_after`` after they were asked (or after the reporter's last reply).
- **Close, maybe** (off unless ``close_after`` is set): as ``not_planned``, once that much
  time has passed, the reminder was sent, and only when the last word on the issue is
  ours (no maintainer and no reporter spoke or labelled after it) and no exempt label is
  on the issue. An issue a maintainer last touched is never closed.

Nothing happens to an issue that is closed, that has no open question, or that a report
was only added to as a comment.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from ai_pipeline.domain.conversation import Conversation


class Actor(StrEnum):
    US = "us"  # the pipeline: the issue itself, our questions and reminders, our labels
    REPORTER = "reporter"  # a reply we posted for the reporter
    MAINTAINER = "maintainer"  # anyone else


@dataclass(frozen=True)
class Activity:
    at: datetime
    actor: Actor
    kind: str  # comment, labeled, unlabeled, closed, reopened


@dataclass(frozen=True)
class IssueView:
    open: bool
    labels: frozenset[str]
    activity: tuple[Activity, ...]


@dataclass(frozen=True)
class Policy:
    remind_after: timedelta | None = timedelta(days=7)
    close_after: timedelta | None = None
    exempt_labels: frozenset[str] = frozenset()

    @classmethod
    def from_days(
        cls, remind_days: float, close_days: float | None, exempt: Iterable[str] = ()
    ) -> Policy:
        """``remind_days`` 0: no reminder; ``close_days`` None or 0: never close."""
        remind = timedelta(days=remind_days) if remind_days > 0 else None
        close = timedelta(days=close_days) if close_days else None
        if remind is not None and close is not None and close <= remind:
            raise ValueError("closing must come after the reminder: close days > remind days")
        return cls(remind, close, frozenset(label.lower() for label in exempt))


class ActionKind(StrEnum):
    REMIND = "remind"
    CLOSE = "close"
    KEEP = "keep"  # a close the rules hold back, listed so a dry run says why


@dataclass(frozen=True)
class Action:
    kind: ActionKind
    request_id: str
    tracker: str
    issue_number: int
    reason: str


def decide(
    conversation: Conversation, issue: IssueView, policy: Policy, now: datetime
) -> Action | None:
    c = conversation
    if not c.needs_info or c.filed_as != "issue" or not issue.open:
        return None
    quiet = now - max(c.filed_at, c.last_reply_at or c.filed_at)
    days = f"{quiet / timedelta(days=1):.0f} days"

    def action(kind: ActionKind, reason: str) -> Action:
        return Action(kind, c.request_id, c.tracker, c.issue_number, reason)

    if c.reminded_at is None and policy.remind_after is not None:
        if quiet >= policy.remind_after:
            return action(ActionKind.REMIND, f"questions unanswered for {days}")
        return None
    if policy.close_after is None or quiet < policy.close_after:
        return None
    exempt = sorted({label.lower() for label in issue.labels} & policy.exempt_labels)
    if exempt:
        return action(ActionKind.KEEP, f"exempt label: {', '.join(exempt)}")
    ours = [a.at for a in issue.activity if a.actor is Actor.US]
    last_word = max([c.filed_at, *ours])
    others = {a.actor for a in issue.activity if a.actor is not Actor.US and a.at >= last_word}
    since = sorted(others)
    if since:
        return action(ActionKind.KEEP, f"the last word is not ours ({', '.join(since)})")
    return action(ActionKind.CLOSE, f"questions unanswered for {days}, reminded")
