"""A filed request's conversation with its reporter: what was asked, what was answered, how
the issue ended, and where the reporter wants to hear about it.

It outlives the request record (Redis drops finished requests after a day, and issues are
closed weeks later), so it holds what notifications, replies, follow-up rules and the
resolution figures need. Folded from the status-updates log like the request state.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field

from ai_pipeline.domain.events import Step, StepChanged
from ai_pipeline.domain.loop_events import (
    IssueResolutionChanged,
    NeedsInfoReminded,
    ReporterReplied,
)
from ai_pipeline.domain.models import BugReport, Notify
from ai_pipeline.domain.request_state import RequestState
from ai_pipeline.domain.resolution import Resolution, opened

ConversationEvent = IssueResolutionChanged | ReporterReplied | NeedsInfoReminded


class Conversation(BaseModel):
    request_id: str
    bug_report_id: str
    reporter: str  # the reporter's address: email notifications and their opt-out
    notify: Notify = Field(default_factory=Notify)
    # Security-sensitive, or filed on the private tracker: the reporter hears "received,
    # under review" and nothing else.
    private: bool = False
    tracker: str  # the tracker's name: local, github, github-private
    issue_number: int
    issue_url: str
    # A report added to an open original as a comment follows that issue's fate, but the
    # questions and reminders belong to issues of its own.
    filed_as: Literal["issue", "comment"] = "issue"
    filed_at: datetime
    questions: list[str] = Field(default_factory=list)  # missing-information fields asked
    answered: list[str] = Field(default_factory=list)
    last_reply_at: datetime | None = None
    reminded_at: datetime | None = None
    resolution: Resolution
    updated_at: datetime

    @property
    def remaining(self) -> list[str]:
        return [q for q in self.questions if q not in self.answered]

    @property
    def needs_info(self) -> bool:
        """Questions open on an issue still open: the follow-up rules' business."""
        return bool(self.remaining) and not self.resolution.state.resolved


def start(state: RequestState, report: BugReport, filed: StepChanged) -> Conversation:
    """The conversation of a request just filed (its ``github`` step completed)."""
    if filed.step is not Step.GITHUB or filed.issue is None:
        raise ValueError("a conversation starts when the issue is filed")
    data: dict[str, Any] = filed.data
    triage = state.progress.get(Step.TRIAGE)
    triaged: dict[str, Any] = triage.data if triage is not None else {}
    filed_as = "comment" if filed.issue.comment else "issue"
    questions = [str(q) for q in triaged.get("missing_information") or []]
    return Conversation(
        request_id=state.request_id,
        bug_report_id=state.bug_report_id,
        reporter=report.reporter,
        notify=report.notify or Notify(),
        private=bool(data.get("private")) or bool(triaged.get("security_sensitive")),
        tracker=str(data.get("tracker") or "local"),
        issue_number=filed.issue.number,
        issue_url=filed.issue.url,
        filed_as=filed_as,
        filed_at=filed.at,
        questions=questions if filed_as == "issue" else [],
        # A change of the issue seen before its filing was folded is kept (see
        # request_state.apply): the later word wins either way.
        resolution=state.resolution or opened(filed.at),
        updated_at=filed.at,
    )


def fold(conversation: Conversation, event: ConversationEvent) -> Conversation | None:
    """The conversation after ``event``; None when it changes nothing (a replay)."""
    if isinstance(event, IssueResolutionChanged):
        if not event.resolution.supersedes(conversation.resolution):
            return None
        return _updated(conversation, event.resolution.at, resolution=event.resolution)
    if isinstance(event, ReporterReplied):
        answered = list(dict.fromkeys([*conversation.answered, *event.answered]))
        last = max(filter(None, [conversation.last_reply_at, event.at]))
        if answered == conversation.answered and last == conversation.last_reply_at:
            return None
        return _updated(conversation, event.at, answered=answered, last_reply_at=last)
    if conversation.reminded_at is not None:
        return None
    return _updated(conversation, event.at, reminded_at=event.at)


def _updated(conversation: Conversation, at: datetime, **changes: Any) -> Conversation:
    changes["updated_at"] = max(at, conversation.updated_at)
    return conversation.model_copy(update=changes)
