"""A request's state and the pure state machine that folds step events into it."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, Field

from ai_pipeline.domain.events import Step, StepChanged, StepStatus, rank
from ai_pipeline.domain.models import SecurityBand
from ai_pipeline.domain.review import settled_band

FINAL_STEP = Step.GITHUB


class RequestStatus(StrEnum):
    SUBMITTED = "submitted"
    PROCESSING = "processing"
    COMPLETED = "completed"
    FAILED = "failed"

    @property
    def terminal(self) -> bool:
        return self in (RequestStatus.COMPLETED, RequestStatus.FAILED)


ACTIVE = (RequestStatus.SUBMITTED, RequestStatus.PROCESSING)


class StepProgress(BaseModel):
    status: StepStatus
    timestamp: datetime
    data: dict[str, Any] = Field(default_factory=dict)
    started_at: datetime | None = None
    duration_seconds: float | None = None


class RequestState(BaseModel):
    request_id: str
    bug_report_id: str
    status: RequestStatus = RequestStatus.SUBMITTED
    current_step: Step = Step.SUBMITTED
    progress: dict[str, StepProgress] = Field(default_factory=dict)
    error_message: str | None = None
    github_issue_number: int | None = None
    github_issue_url: str | None = None
    created_at: datetime
    updated_at: datetime
    completed_at: datetime | None = None
    rank: int = 0

    @property
    def held_for_review(self) -> bool:
        """Waiting in the review queue: no agent will move it until a maintainer does."""
        review = self.progress.get(Step.REVIEW)
        return (
            self.status is RequestStatus.PROCESSING
            and self.current_step is Step.REVIEW
            and review is not None
            and review.status is StepStatus.STARTED
        )

    @property
    def security_band(self) -> SecurityBand:
        """The band triage gave, as the review settled it (``domain.review``)."""
        triage = self.progress.get(Step.TRIAGE)
        review = self.progress.get(Step.REVIEW)
        released = review is not None and review.status is StepStatus.COMPLETED
        return settled_band(
            triage.data if triage else {}, review.data if review else None, released
        )

    @property
    def processing_time_seconds(self) -> float | None:
        if self.completed_at is None:
            return None
        return (self.completed_at - self.created_at).total_seconds()

    def public_view(self) -> dict[str, Any]:
        """The status document of the API contract."""
        body = self.model_dump(mode="json", exclude={"rank", "completed_at"})
        body["progress"] = {
            step: {"status": p["status"], "timestamp": p["timestamp"], "data": p["data"]}
            for step, p in body["progress"].items()
        }
        body["processing_time_seconds"] = self.processing_time_seconds
        return body


def new_request(request_id: str, bug_report_id: str, at: datetime) -> RequestState:
    return RequestState(
        request_id=request_id,
        bug_report_id=bug_report_id,
        created_at=at,
        updated_at=at,
        progress={Step.SUBMITTED: StepProgress(status=StepStatus.COMPLETED, timestamp=at)},
        rank=rank(Step.SUBMITTED, StepStatus.COMPLETED),
    )


def fold(state: RequestState | None, event: StepChanged) -> RequestState | None:
    """Like ``apply``, but a request unknown so far is born from its ``submitted`` event,
    which is how state is rebuilt from the status-updates log."""
    if state is not None:
        return apply(state, event)
    bug_report_id = event.data.get("bug_report_id")
    if event.step is not Step.SUBMITTED or not isinstance(bug_report_id, str):
        return None
    return new_request(event.request_id, bug_report_id, event.at)


def apply(state: RequestState, event: StepChanged) -> RequestState | None:
    """Fold one step event into the state; None when the event changes nothing.

    Events can arrive twice or late (at-least-once delivery, replays): a terminal request
    never moves, and an event ranked at or below the stored rank is stale.
    """
    if state.status.terminal or event.rank <= state.rank:
        return None
    new = state.model_copy(deep=True)
    previous = new.progress.get(event.step)
    started_at = (
        event.at
        if event.status is StepStatus.STARTED
        else event.started_at or _started(previous, event)
    )
    new.progress[event.step] = StepProgress(
        status=event.status,
        timestamp=event.at,
        data=event.data or (previous.data if previous else {}),
        started_at=started_at,
        duration_seconds=(
            None
            if event.status is StepStatus.STARTED or started_at is None
            else max(0.0, (event.at - started_at).total_seconds())
        ),
    )
    new.current_step = event.step
    new.rank = event.rank
    new.updated_at = max(event.at, state.updated_at)
    if event.status is StepStatus.FAILED:
        new.status = RequestStatus.FAILED
        new.error_message = event.error or f"step {event.step} failed"
        new.completed_at = new.updated_at
    elif event.status is StepStatus.COMPLETED and event.step is FINAL_STEP:
        new.status = RequestStatus.COMPLETED
        new.completed_at = new.updated_at
    else:
        new.status = RequestStatus.PROCESSING
    if event.issue is not None:
        new.github_issue_number = event.issue.number
        new.github_issue_url = event.issue.url
    return new


def _started(previous: StepProgress | None, event: StepChanged) -> datetime | None:
    if previous is None:
        return None
    return previous.started_at or (
        previous.timestamp if previous.status is StepStatus.STARTED else None
    )
