"""A request's resolution and questions after filing: folded from the log, idempotently."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from ai_pipeline.domain.loop_events import IssueResolutionChanged, ReporterReplied
from ai_pipeline.domain.request_state import RequestStatus, apply, fold
from ai_pipeline.domain.resolution import CloseReason, ResolutionState, closed, reopened
from tests.fakes.loop import QUESTIONS, filed_state

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def change(
    at: datetime, reason: CloseReason | None = None, of: int | None = None
) -> IssueResolutionChanged:
    resolution = reopened(at) if reason is None else closed(reason, at, of)
    return IssueResolutionChanged(
        request_id="r-1", tracker="local", issue_number=7, resolution=resolution, source="local"
    )


def test_filing_opens_the_resolution_and_records_the_questions_asked() -> None:
    state, _ = filed_state("r-1", T0)
    assert state.status is RequestStatus.COMPLETED
    assert state.resolution is not None and state.resolution.state is ResolutionState.OPEN
    assert state.needs_info is not None and state.needs_info.questions == QUESTIONS
    doc = state.public_view()
    assert doc["resolution"]["state"] == "open" and doc["needs_info"]["answered"] == []


def test_a_completed_request_follows_its_issue_closed_reopened_and_closed_as_duplicate() -> None:
    state, _ = filed_state("r-1", T0)
    fixed = apply(state, change(T0 + timedelta(days=2), CloseReason.COMPLETED))
    assert fixed is not None and fixed.resolution is not None
    assert fixed.resolution.state is ResolutionState.FIXED
    again = apply(fixed, change(T0 + timedelta(days=3)))
    assert again is not None and again.resolution is not None
    assert again.resolution.state is ResolutionState.REOPENED
    dup = apply(again, change(T0 + timedelta(days=4), CloseReason.DUPLICATE, of=3))
    assert dup is not None and dup.resolution is not None
    assert (dup.resolution.state, dup.resolution.duplicate_issue_number) == (
        ResolutionState.DUPLICATE,
        3,
    )
    assert dup.status is RequestStatus.COMPLETED  # the request itself never moves again


def test_a_change_seen_twice_or_out_of_order_changes_nothing() -> None:
    state, _ = filed_state("r-1", T0)
    later = apply(state, change(T0 + timedelta(days=2), CloseReason.NOT_PLANNED))
    assert later is not None
    assert apply(later, change(T0 + timedelta(days=2), CloseReason.NOT_PLANNED)) is None
    assert apply(later, change(T0 + timedelta(days=1))) is None


def test_a_close_folded_before_the_filing_survives_it() -> None:
    state, filing = filed_state("r-1", T0)
    before = state.model_copy(update={"resolution": None, "status": RequestStatus.PROCESSING})
    before = before.model_copy(update={"rank": 0, "github_issue_number": None})
    early = apply(before, change(T0 + timedelta(seconds=1), CloseReason.COMPLETED))
    assert early is not None
    filed = apply(early, filing.model_copy(update={"at": T0 + timedelta(seconds=2)}))
    assert filed is not None and filed.resolution is not None
    assert filed.resolution.state is ResolutionState.FIXED


def test_replies_answer_questions_once_each_and_the_last_answer_is_dated() -> None:
    state, _ = filed_state("r-1", T0)
    first = ReporterReplied(
        request_id="r-1", reply_id="a", at=T0 + timedelta(hours=1), answered=["environment"]
    )
    one = apply(state, first)
    assert one is not None and one.needs_info is not None
    assert one.needs_info.answered == ["environment"] and one.needs_info.answered_at is None
    assert apply(one, first) is None  # the same reply delivered twice
    second = ReporterReplied(
        request_id="r-1", reply_id="b", at=T0 + timedelta(hours=2), answered=QUESTIONS
    )
    two = apply(one, second)
    assert two is not None and two.needs_info is not None
    assert two.needs_info.reply_ids == ["a", "b"]
    assert two.needs_info.answered_at == T0 + timedelta(hours=2)


def test_an_event_of_a_request_the_store_no_longer_holds_creates_nothing() -> None:
    assert fold(None, change(T0, CloseReason.COMPLETED)) is None
