"""Loop test data: a filed request's state, report and conversation, built the way the
agents build them."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from ai_pipeline.domain.conversation import Conversation, start
from ai_pipeline.domain.events import Step, StepChanged, StepStatus
from ai_pipeline.domain.models import FiledIssue, Notify
from ai_pipeline.domain.request_state import RequestState, apply, new_request
from tests.factories import report

QUESTIONS = ["steps_to_reproduce", "environment"]


def filed_state(
    request_id: str, at: datetime, questions: list[str] | None = None, **triage: Any
) -> tuple[RequestState, StepChanged]:
    """A request triaged (asking ``questions``) and filed as issue #7, and its filing."""
    state = new_request(request_id, f"BUG-{request_id}", at)
    data = {"missing_information": QUESTIONS if questions is None else questions, **triage}
    triaged = StepChanged(
        request_id=request_id, step=Step.TRIAGE, status=StepStatus.COMPLETED, at=at, data=data
    )
    state = apply(state, triaged) or state
    filing = StepChanged(
        request_id=request_id,
        step=Step.GITHUB,
        status=StepStatus.COMPLETED,
        at=at,
        data={"tracker": "local", "private": False, "issue_number": 7},
        issue=FiledIssue(number=7, url="http://localhost:8000/api/v1/issues/7"),
    )
    filed = apply(state, filing)
    assert filed is not None
    return filed, filing


def conversation(
    request_id: str = "r-1",
    at: datetime | None = None,
    notify: Notify | None = None,
    questions: list[str] | None = None,
    **triage: Any,
) -> Conversation:
    at = at or datetime.fromisoformat("2026-03-02T09:00:00+00:00")
    state, filing = filed_state(request_id, at, questions, **triage)
    wanted = notify or Notify(webhook="https://hooks.example.com/ai", email=True)
    return start(state, report(notify=wanted.model_dump()), filing)
