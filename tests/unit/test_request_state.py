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


def life_with_a_redrive() -> list[StepChanged]:
    """Triaged, drafted, refused by GitHub (401), redriven from drafting, then filed."""
    t0 = utcnow()

    def at(n: int) -> dict[str, object]:
        return {"at": t0 + timedelta(seconds=n)}

    return [
        event(Step.SUBMITTED, StepStatus.COMPLETED, data={"bug_report_id": "BUG-1"}, **at(0)),
        event(Step.TRIAGE, StepStatus.COMPLETED, **at(1)),
        event(Step.TICKET_CREATION, StepStatus.COMPLETED, **at(2)),
        event(Step.GITHUB, StepStatus.FAILED, error="github failed: 401", **at(3)),
        event(Step.TICKET_CREATION, StepStatus.REDRIVEN, data={"by": "redrive"}, **at(60)),
        event(Step.TICKET_CREATION, StepStatus.COMPLETED, **at(61)),
        event(Step.GITHUB, StepStatus.COMPLETED, issue=FiledIssue(number=4, url="u"), **at(62)),
    ]


def test_a_redrive_reopens_a_failed_request_just_before_its_step() -> None:
    events = life_with_a_redrive()
    failed = None
    for e in events[:4]:
        failed = fold(failed, e)
    assert failed is not None and failed.status is RequestStatus.FAILED

    reopened = apply(failed, events[4])

    assert reopened is not None and reopened.status is RequestStatus.PROCESSING
    assert reopened.current_step is Step.TICKET_CREATION and reopened.error_message is None
    assert reopened.completed_at is None and "github" not in reopened.progress
    redriven = reopened.progress["ticket_creation"]
    assert redriven.status is StepStatus.REDRIVEN
    assert redriven.data == {"by": "redrive", "error": "github failed: 401"}
    # What the step does next counts again; anything from before the redrive is stale.
    assert apply(reopened, events[2]) is not None
    assert apply(reopened, event(Step.TRIAGE, StepStatus.COMPLETED)) is None


def test_only_a_failed_request_is_reopened() -> None:
    events = life_with_a_redrive()
    processing = fold(fold(None, events[0]), events[1])
    assert processing is not None
    assert apply(processing, events[4]) is None
    done = None
    for e in events:
        done = fold(done, e)
    assert done is not None and done.status is RequestStatus.COMPLETED
    assert apply(done, events[4]) is None  # a completed request stays completed


def test_the_log_folded_again_from_any_point_ends_where_the_request_did() -> None:
    """A rebuild replays the log onto whatever the store holds; a redelivery replays its
    tail. With a redrive in it, both still end at the live state."""
    events = life_with_a_redrive()
    live = None
    for e in events:
        live = fold(live, e)
    for start in range(len(events)):
        partial = None
        for e in events[:start]:
            partial = fold(partial, e)
        for e in events:  # the whole log again, over what was folded so far
            partial = fold(partial, e) or partial
        assert partial == live, start
