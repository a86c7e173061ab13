"""The request state machine, pure."""

from __future__ import annotations

from datetime import timedelta

from ai_pipeline.domain.events import Step, StepChanged, StepStatus, utcnow
from ai_pipeline.domain.models import FiledIssue
from ai_pipeline.domain.request_state import RequestStatus, apply, fold, new_request


def event(step: Step, status: StepStatus, **kw: object) -> StepChanged:
    return StepChanged(request_id="r1", step=step, status=status, **kw)  # type: ignore[arg-type]


def test_a_request_walks_through_every_step_to_completed() -> None:
    t0 = utcnow()
    state = new_request("r1", "BUG-1", t0)
    for i, step in enumerate((Step.TRIAGE, Step.TICKET_CREATION, Step.GITHUB)):
        at = t0 + timedelta(seconds=i + 1)
        started = apply(state, event(step, StepStatus.STARTED, at=at))
        assert started is not None and started.status is RequestStatus.PROCESSING
        issue = FiledIssue(number=3, url="u") if step is Step.GITHUB else None
        done = apply(started, event(step, StepStatus.COMPLETED, at=at, issue=issue))
        assert done is not None
        state = done
    assert state.status is RequestStatus.COMPLETED
    assert state.github_issue_number == 3
    assert state.processing_time_seconds == 3.0


def test_terminal_states_are_final() -> None:
    state = apply(new_request("r1", "B", utcnow()), event(Step.TRIAGE, StepStatus.FAILED))
    assert state is not None and state.status is RequestStatus.FAILED
    assert apply(state, event(Step.GITHUB, StepStatus.COMPLETED)) is None


def test_a_duplicate_or_older_event_is_stale() -> None:
    state = apply(new_request("r1", "B", utcnow()), event(Step.TRIAGE, StepStatus.COMPLETED))
    assert state is not None
    assert apply(state, event(Step.TRIAGE, StepStatus.COMPLETED)) is None
    assert apply(state, event(Step.TRIAGE, StepStatus.STARTED)) is None


def test_step_duration_is_measured_from_its_start() -> None:
    t0 = utcnow()
    state = apply(new_request("r1", "B", t0), event(Step.TRIAGE, StepStatus.STARTED, at=t0))
    assert state is not None
    done = apply(
        state, event(Step.TRIAGE, StepStatus.COMPLETED, at=t0 + timedelta(milliseconds=250))
    )
    assert done is not None and done.progress["triage"].duration_seconds == 0.25


def test_an_unknown_request_is_born_only_from_its_submitted_event() -> None:
    assert fold(None, event(Step.TRIAGE, StepStatus.STARTED)) is None
    born = fold(None, event(Step.SUBMITTED, StepStatus.COMPLETED, data={"bug_report_id": "BUG-9"}))
    assert born is not None and born.bug_report_id == "BUG-9"


def test_the_public_view_has_the_contract_fields() -> None:
    view = new_request("r1", "B", utcnow()).public_view()
    assert set(view) >= {
        "request_id",
        "bug_report_id",
        "status",
        "current_step",
        "progress",
        "error_message",
        "github_issue_number",
        "github_issue_url",
        "created_at",
        "updated_at",
        "processing_time_seconds",
    }
    assert set(view["progress"]["submitted"]) == {"status", "timestamp", "data"}


def test_a_step_reported_once_over_still_has_its_duration() -> None:
    t0 = utcnow()
    done = apply(
        new_request("r1", "B", t0),
        event(Step.TRIAGE, StepStatus.COMPLETED, at=t0 + timedelta(seconds=2), started_at=t0),
    )
    assert done is not None and done.progress["triage"].duration_seconds == 2.0
