"""Duplicate hints keep a bounded memory: past twice their capacity, the oldest filed issues
are forgotten (a service running for months must not grow without end)."""

from __future__ import annotations

import pytest

from ai_pipeline.domain.events import Step, StepChanged, StepStatus, utcnow
from ai_pipeline.domain.models import BugReport, FiledIssue
from ai_pipeline.domain.redaction import Redactor
from ai_pipeline.domain.request_state import RequestState, apply, new_request
from ai_pipeline.duplicate_hints import DuplicateHints
from tests.factories import report

pytestmark = pytest.mark.anyio


def filed(n: int, report_id: str | None = None) -> tuple[RequestState, BugReport]:
    r = report(id=report_id or f"BUG-{n}", title="The printer driver stops after resume")
    state: RequestState | None = new_request(f"req-{n}", r.id, utcnow())
    issue = FiledIssue(number=n, url=f"https://tracker.test/{n}")
    for step, data in (
        (Step.TRIAGE, {"security_sensitive": False}),
        (Step.TICKET_CREATION, {}),
        (Step.GITHUB, {}),
    ):
        assert state is not None
        event = StepChanged(
            request_id=state.request_id,
            step=step,
            status=StepStatus.COMPLETED,
            data=data,
            issue=issue if step is Step.GITHUB else None,
        )
        state = apply(state, event)
    assert state is not None
    return state, r


class Store:
    """The one read hints make of the state store: the newest reports first."""

    def __init__(self, rows: list[tuple[RequestState, BugReport]]):
        self.rows = rows

    async def recent_reports(self, limit: int) -> list[tuple[RequestState, BugReport]]:
        return self.rows[::-1][:limit]


async def test_the_oldest_filed_issues_are_forgotten_past_twice_the_capacity() -> None:
    rows = [filed(n) for n in range(1, 21)]
    hints = DuplicateHints(Store(rows), Redactor(), capacity=4)  # type: ignore[arg-type]
    found = await hints.candidates("The printer driver stops after resume", "", 10)
    assert len(hints) == 8  # twice the capacity, of 20 filed
    assert {h["issue_number"] for h in found} <= set(range(13, 21))  # the newest only


async def test_two_reports_with_one_id_are_two_hints() -> None:
    hints = DuplicateHints(Store([filed(1, "BUG-X"), filed(2, "BUG-X")]), Redactor())  # type: ignore[arg-type]
    found = await hints.candidates("The printer driver stops after resume", "", 5)
    assert sorted(h["request_id"] for h in found) == ["req-1", "req-2"]
    assert {h["bug_report_id"] for h in found} == {"BUG-X"}
