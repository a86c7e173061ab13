"""How a filed issue ended: the ``resolution`` of a request, and the tracker words for it."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel


class ResolutionState(StrEnum):
    OPEN = "open"
    FIXED = "fixed"
    NOT_PLANNED = "not_planned"
    DUPLICATE = "duplicate"
    REOPENED = "reopened"

    @property
    def resolved(self) -> bool:
        return self in RESOLVED


RESOLVED = frozenset(
    {ResolutionState.FIXED, ResolutionState.NOT_PLANNED, ResolutionState.DUPLICATE}
)


class CloseReason(StrEnum):
    """Why an issue was closed, in GitHub's words (``state_reason``)."""

    COMPLETED = "completed"
    NOT_PLANNED = "not_planned"
    DUPLICATE = "duplicate"


_CLOSED_AS = {
    CloseReason.COMPLETED: ResolutionState.FIXED,
    CloseReason.NOT_PLANNED: ResolutionState.NOT_PLANNED,
    CloseReason.DUPLICATE: ResolutionState.DUPLICATE,
}


class Resolution(BaseModel):
    state: ResolutionState
    at: datetime
    duplicate_issue_number: int | None = None

    def supersedes(self, other: Resolution | None) -> bool:
        """Whether this resolution replaces ``other``: the later word wins, so a change
        delivered twice or replayed from the log (a rebuild) changes nothing."""
        return other is None or self.at > other.at


def opened(at: datetime) -> Resolution:
    return Resolution(state=ResolutionState.OPEN, at=at)


def closed(reason: CloseReason, at: datetime, duplicate_of: int | None = None) -> Resolution:
    if reason is not CloseReason.DUPLICATE and duplicate_of is not None:
        raise ValueError("only a duplicate names the issue it duplicates")
    return Resolution(state=_CLOSED_AS[reason], at=at, duplicate_issue_number=duplicate_of)


def reopened(at: datetime) -> Resolution:
    return Resolution(state=ResolutionState.REOPENED, at=at)
