"""The triage port: one interface every engine (local, llm) implements."""

from __future__ import annotations

from typing import Protocol

from ai_pipeline.domain.models import BugReport, DuplicateCandidate, TriageResult


class TriageEngine(Protocol):
    """Decides type, priority, severity, category, labels, duplicates, missing info, security.

    ``candidates`` are earlier reports most similar to this one, best first, as found by the
    duplicate index; the engine decides which (if any) becomes ``duplicate_of``.
    Engines are pure and synchronous: no I/O after construction.
    """

    name: str

    def triage(self, report: BugReport, candidates: list[DuplicateCandidate]) -> TriageResult: ...
