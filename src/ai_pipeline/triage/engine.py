"""The triage port: one interface every engine (local, llm) implements."""

from __future__ import annotations

from typing import Protocol

from ai_pipeline.domain.models import BugReport, DuplicateCandidate, TriageResult
from ai_pipeline.triage.embeddings import Embedding


class TriageEngine(Protocol):
    """Decides type, priority, severity, category, labels, duplicates, missing info, security.

    ``embedding`` is the report's sentence embedding (``triage.embeddings``), computed once
    by the caller for duplicate search and shared with the engine's models.
    ``candidates`` are earlier reports most similar to this one, best first, as found by the
    duplicate index; the engine decides which (if any) becomes ``duplicate_of``.
    The local engine does no I/O after construction; the LLM engine calls its endpoint and
    falls back to the local engine, hence the coroutine.
    """

    name: str

    async def triage(
        self,
        report: BugReport,
        candidates: list[DuplicateCandidate],
        embedding: Embedding | None = None,
    ) -> TriageResult: ...
