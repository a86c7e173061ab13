"""Events that flow between agents, one type per topic, and their wire encoding."""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field, TypeAdapter

from ai_pipeline.domain.github import InPlaceDraft
from ai_pipeline.domain.loop_events import (
    IssueResolutionChanged,
    NeedsInfoReminded,
    ReplyReceived,
    ReporterReplied,
)
from ai_pipeline.domain.models import BugReport, FiledIssue, IssueDraft, TriageResult
from ai_pipeline.domain.notifications import Notification


class Topic(StrEnum):
    BUG_REPORTS = "bug-reports"
    TRIAGE_RESULTS = "triage-results"
    TICKET_CREATION = "ticket-creation"
    STATUS_UPDATES = "status-updates"
    # Closing the loop: notifications to reporters, and reporters' replies to post.
    NOTIFICATIONS = "notifications"
    REPLIES = "replies"

    @property
    def dead_letter(self) -> str:
        return f"{self.value}.dlq"


def utcnow() -> datetime:
    return datetime.now(UTC)


class Step(StrEnum):
    """Steps of a request, in the order they happen."""

    SUBMITTED = "submitted"
    TRIAGE = "triage"
    # Only for a report held for a maintainer's review (``domain.review``): started when
    # held, completed when released.
    REVIEW = "review"
    TICKET_CREATION = "ticket_creation"
    GITHUB = "github"

    @property
    def ordinal(self) -> int:
        return _STEP_ORDINALS[self]


_STEP_ORDINALS = {step: i for i, step in enumerate(Step)}
# The steps an agent performs (submission is the API's), each with its own figures.
AGENT_STEPS = (Step.TRIAGE, Step.TICKET_CREATION, Step.GITHUB)


class StepStatus(StrEnum):
    STARTED = "started"
    COMPLETED = "completed"
    FAILED = "failed"
    # An operator replays a failed request from this step (``ai-pipeline redrive``): the
    # only event that moves a request out of ``failed``, back to just before the step.
    REDRIVEN = "redriven"


class BugReportSubmitted(BaseModel):
    kind: Literal["bug_report_submitted"] = "bug_report_submitted"
    request_id: str
    report: BugReport
    submitted_at: datetime = Field(default_factory=utcnow)
    # Kept on the log so a rebuilt state store still recognises a retried submission.
    idempotency_key: str | None = None
    # The scope of its id (``domain.submissions``): the submitting API key's id; None for
    # the open scope, and for events written before ids were scoped.
    submitter: str | None = None


class ReportTriaged(BaseModel):
    kind: Literal["report_triaged"] = "report_triaged"
    request_id: str
    report: BugReport
    triage: TriageResult
    # Released by a maintainer from the review queue: never held again.
    reviewed: bool = False


class IssueDrafted(BaseModel):
    kind: Literal["issue_drafted"] = "issue_drafted"
    request_id: str
    bug_report_id: str
    draft: IssueDraft
    security_sensitive: bool = False
    # The open issue triage took this report to duplicate, and the report drafted as a
    # comment on it: the tracker agent uses them in the "comment" duplicate mode.
    duplicate_of_issue: int | None = None
    occurrence: str | None = None


class TriageCommentDrafted(BaseModel):
    """An issue opened on GitHub, triaged: the comment and labels drafted to act on it in
    place (GitHub App mode). The tracker agent acts on it; nothing new is filed."""

    kind: Literal["triage_comment_drafted"] = "triage_comment_drafted"
    request_id: str
    bug_report_id: str
    draft: InPlaceDraft


class StepChanged(BaseModel):
    """A request moved: the only event the coordinator folds into request state."""

    kind: Literal["step_changed"] = "step_changed"
    request_id: str
    step: Step
    status: StepStatus
    at: datetime = Field(default_factory=utcnow)
    # When a step is reported once it is over, when it began: its duration is measured.
    started_at: datetime | None = None
    data: dict[str, Any] = Field(default_factory=dict)
    error: str | None = None
    issue: FiledIssue | None = None

    @property
    def rank(self) -> int:
        """Position in the request's life; a smaller rank than the stored one is stale."""
        return rank(self.step, self.status)


def rank(step: Step, status: StepStatus) -> int:
    return step.ordinal * 3 + _STATUS_ORDER[status]


# Redriven ranks just below the step's start, so everything the step does next is news.
_STATUS_ORDER = {
    StepStatus.REDRIVEN: -1,
    StepStatus.STARTED: 0,
    StepStatus.COMPLETED: 1,
    StepStatus.FAILED: 2,
}


Event = Annotated[
    BugReportSubmitted
    | ReportTriaged
    | IssueDrafted
    | TriageCommentDrafted
    | StepChanged
    | IssueResolutionChanged
    | ReporterReplied
    | NeedsInfoReminded
    | ReplyReceived
    | Notification,
    Field(discriminator="kind"),
]
_EVENT = TypeAdapter[Event](Event)


def encode(event: BaseModel) -> bytes:
    return event.model_dump_json().encode()


def decode(raw: bytes) -> Event:
    """Parse a message value; raises pydantic.ValidationError on a poison message."""
    return _EVENT.validate_json(raw)
