"""A request's state and the pure state machine that folds step events into it."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, Field

from ai_pipeline.domain.events import Step, StepChanged, StepStatus, rank
from ai_pipeline.domain.github import source_of
from ai_pipeline.domain.loop_events import IssueResolutionChanged, ReporterReplied
from ai_pipeline.domain.models import SecurityBand
from ai_pipeline.domain.resolution import Resolution, opened
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


class NeedsInfo(BaseModel):
    """The questions filed with the issue (missing-information fields) and the answers."""

    questions: list[str]
    answered: list[str] = Field(default_factory=list)
    reply_ids: list[str] = Field(default_factory=list)  # replies posted, in order
    answered_at: datetime | None = None  # when the last question was answered


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
    # How the filed issue ended: ``open`` once filed, then as the tracker says.
    resolution: Resolution | None = None
    needs_info: NeedsInfo | None = None

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
        body["source"] = source_of(self.bug_report_id)  # "github": an issue triaged in place
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


# What the request state is folded from (the status-updates log).
StateEvent = StepChanged | IssueResolutionChanged | ReporterReplied


def fold(state: RequestState | None, event: StateEvent) -> RequestState | None:
    """Like ``apply``, but a request unknown so far is born from its ``submitted`` event,
    which is how state is rebuilt from the status-updates log."""
    if state is not None:
        return apply(state, event)
    if not isinstance(event, StepChanged):
        return None  # a later event of a request this store no longer holds
    bug_report_id = event.data.get("bug_report_id")
    if event.step is not Step.SUBMITTED or not isinstance(bug_report_id, str):
        return None
    return new_request(event.request_id, bug_report_id, event.at)


def apply(state: RequestState, event: StateEvent) -> RequestState | None:
    """Fold one event into the state; None when the event changes nothing.

    Events can arrive twice or late (at-least-once delivery, replays): a terminal request
    never moves, and an event ranked at or below the stored rank is stale. The issue's
    life after filing moves a completed request's ``resolution`` and ``needs_info`` only;
    a redrive reopens a failed request (and only a failed one).
    """
    if isinstance(event, IssueResolutionChanged):
        return _resolved(state, event)
    if isinstance(event, ReporterReplied):
        return _replied(state, event)
    if event.status is StepStatus.REDRIVEN:
        return _reopened(state, event)
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
        # A close seen before the filing was folded (the tracker is quicker than the log)
        # is kept: the later word wins.
        new.resolution = new.resolution or opened(event.at)
        new.needs_info = _questions(new, event)
    return new


def _questions(state: RequestState, filed: StepChanged) -> NeedsInfo | None:
    if filed.issue is None or filed.issue.comment:
        return None  # a comment on another issue asks nothing (its questions are not ours)
    triage = state.progress.get(Step.TRIAGE)
    asked = (triage.data if triage is not None else {}).get("missing_information") or []
    return NeedsInfo(questions=[str(q) for q in asked]) if asked else None


def _resolved(state: RequestState, event: IssueResolutionChanged) -> RequestState | None:
    if not event.resolution.supersedes(state.resolution):
        return None
    return state.model_copy(
        update={
            "resolution": event.resolution,
            "updated_at": max(state.updated_at, event.resolution.at),
        }
    )


def _replied(state: RequestState, event: ReporterReplied) -> RequestState | None:
    needs = state.needs_info or NeedsInfo(questions=[])
    if event.reply_id in needs.reply_ids:
        return None  # delivered twice, or replayed by a rebuild
    answered = list(dict.fromkeys([*needs.answered, *event.answered]))
    done = bool(needs.questions) and set(needs.questions) <= set(answered)
    new_needs = needs.model_copy(
        update={
            "answered": answered,
            "reply_ids": [*needs.reply_ids, event.reply_id],
            "answered_at": needs.answered_at or (event.at if done else None),
        }
    )
    return state.model_copy(
        update={"needs_info": new_needs, "updated_at": max(state.updated_at, event.at)}
    )


def _reopened(state: RequestState, event: StepChanged) -> RequestState | None:
    """A failed request back to just before ``event.step``, as if that step's input had
    just arrived: what happened at that step and later is dropped (the redriven progress
    keeps the error it ended with), so the step's own events count again.

    Replayed from the log (a rebuild, a redelivery), a redrive finds the request failed
    again only where it was failed at that point of the log, and every later event follows
    it: folding the whole log still ends where the live request did."""
    if state.status is not RequestStatus.FAILED:
        return None
    new = state.model_copy(deep=True)
    new.progress = {
        step: progress
        for step, progress in new.progress.items()
        if Step(step).ordinal < event.step.ordinal
    }
    new.progress[event.step] = StepProgress(
        status=StepStatus.REDRIVEN,
        timestamp=event.at,
        data={**event.data, "error": state.error_message},
    )
    new.status = RequestStatus.PROCESSING
    new.current_step = event.step
    new.rank = event.rank
    new.error_message = None
    new.completed_at = None
    new.updated_at = max(event.at, state.updated_at)
    return new


def _started(previous: StepProgress | None, event: StepChanged) -> datetime | None:
    if previous is None:
        return None
    return previous.started_at or (
        previous.timestamp if previous.status is StepStatus.STARTED else None
    )
