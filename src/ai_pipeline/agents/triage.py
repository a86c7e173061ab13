"""The triage agent: a submitted report in, a triage result out.

Each report is embedded once (``triage.embeddings``); the vector serves the duplicate
search and the engine's models, and is stored with the request so a restarted agent seeds
its index without embedding every recent report again. The work on the report's text
(embedding, the tf-idf vector, the engine's models and rules, routing) runs on worker
threads within the report's budget (``agents.offload``), so the event loop, which may also
serve the API, is never blocked by it, and a report built to be slow is dead-lettered.
The duplicate index itself is read and changed on the event loop only.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import numpy as np

from ai_pipeline.agents.messages import step_ran, to_topic
from ai_pipeline.agents.offload import DEFAULT_BUDGET_SECONDS, off_loop, report_budget
from ai_pipeline.domain.errors import PermanentError
from ai_pipeline.domain.events import (
    BugReportSubmitted,
    Event,
    ReportTriaged,
    Step,
    Topic,
    utcnow,
)
from ai_pipeline.domain.github import index_key
from ai_pipeline.domain.models import DuplicateCandidate, SecurityBand
from ai_pipeline.domain.request_state import RequestState
from ai_pipeline.observability.metrics import Metrics
from ai_pipeline.ports import OutgoingMessage, StateStore
from ai_pipeline.triage.duplicates import DuplicateIndex
from ai_pipeline.triage.embeddings import DIMENSIONS, Embedder, Embedding, report_text
from ai_pipeline.triage.engine import TriageEngine
from ai_pipeline.triage.routing import Router


class TriageAgent:
    def __init__(
        self,
        engine: TriageEngine,
        index: DuplicateIndex,
        store: StateStore,
        metrics: Metrics,
        router: Router | None = None,
        embedder: Embedder | None = None,
        cpu_budget: float = DEFAULT_BUDGET_SECONDS,
    ):
        self.engine = engine
        self.index = index
        self.store = store
        self.metrics = metrics
        self.router = router or Router(())
        self.embedder = embedder
        self.cpu_budget = cpu_budget

    async def seed_index(self, limit: int) -> int:
        """Fill the duplicate index with the newest stored reports, oldest first.

        Reports stored without an embedding (triaged before embeddings were kept) are
        embedded here, in batches on a worker thread. A report folds into the one it
        duplicates only through a trusted link (:func:`trusted_canonical`).
        """
        if self.embedder is not None:
            await asyncio.to_thread(self.embedder.warm_up)
        rows = await self.store.recent_reports(limit)
        rows = [
            (state, report)
            for state, report in rows[::-1]
            if state.security_band is SecurityBand.PUBLIC
        ]
        stored = await self.store.embeddings([state.request_id for state, _ in rows])
        vectors = {rid: _vector(raw) for rid, raw in stored.items()}
        missing = [
            (s.request_id, r.full_text()) for s, r in rows if vectors.get(s.request_id) is None
        ]
        if missing and self.embedder is not None:
            texts = [report_text(text) for _, text in missing]
            computed = await asyncio.to_thread(self.embedder.embed, texts)
            vectors.update((rid, row) for (rid, _), row in zip(missing, computed, strict=True))
        by_issue = {
            state.github_issue_number: report.id
            for state, report in rows
            if state.github_issue_number is not None
        }
        for state, report in rows:
            self.index.add(
                report.id,
                state.request_id,
                report.title,
                report.full_text(),
                issue_number=state.github_issue_number,
                embedding=vectors.get(state.request_id),
                canonical_id=_canonical(report.id, trusted_canonical(state, by_issue)),
            )
        return len(rows)

    async def handle(self, event: Event) -> Sequence[OutgoingMessage]:
        if not isinstance(event, BugReportSubmitted):
            raise PermanentError(f"triage agent cannot handle {event.kind}")
        with report_budget(self.cpu_budget):
            return await self._triage(event)

    async def _triage(self, event: BugReportSubmitted) -> Sequence[OutgoingMessage]:
        started = utcnow()
        report = event.report
        text = report.full_text()
        embedding = await self._embed(text)
        vector = await off_loop(self.index.vector, report.title, text)
        # A later pass over a GitHub issue must not find the issue's own earlier passes.
        candidates = self.index.search(
            vector, k=5, exclude_bug_report_id=index_key(report.id), embedding=embedding
        )
        result = await self.engine.triage(
            report, await self._with_issue_numbers(candidates), embedding
        )
        result = await off_loop(self.router.apply, report, result)
        if result.security_band is SecurityBand.PUBLIC:
            # A report that may be filed privately must never be offered as the duplicate of
            # a public one: the link would disclose it.
            self.index.add(
                report.id,
                event.request_id,
                report.title,
                text,
                vector=vector,
                embedding=embedding,
                # Set only above the precision bar: a weaker match never folds reports.
                canonical_id=_canonical(
                    report.id, result.duplicate_of.bug_report_id if result.duplicate_of else None
                ),
            )
            if embedding is not None:
                await self.store.put_embedding(event.request_id, embedding.tobytes())
        for field, value in result.confidence.items():
            self.metrics.triage_confidence.labels(field).observe(value)
        triaged = ReportTriaged(request_id=event.request_id, report=report, triage=result)
        return [
            *step_ran(
                event.request_id, Step.TRIAGE, started, utcnow(), result.model_dump(mode="json")
            ),
            to_topic(Topic.TRIAGE_RESULTS, event.request_id, triaged),
        ]

    async def _embed(self, text: str) -> Embedding | None:
        if self.embedder is None:
            return None
        return await off_loop(self.embedder.embed_one, report_text(text))

    async def _with_issue_numbers(
        self, candidates: list[DuplicateCandidate]
    ) -> list[DuplicateCandidate]:
        # Issues get numbers after triage; the store knows them now, the index may not.
        enriched = []
        for candidate in candidates:
            if candidate.issue_number is None and candidate.request_id:
                state = await self.store.get(candidate.request_id)
                if state is not None and state.github_issue_number is not None:
                    candidate = candidate.model_copy(
                        update={"issue_number": state.github_issue_number}
                    )
                    self.index.set_issue_number(
                        candidate.request_id or "", state.github_issue_number
                    )
            enriched.append(candidate)
        return enriched


def _canonical(bug_report_id: str, duplicate_of: str | None) -> str | None:
    """What a report is offered as: a later pass over a GitHub issue is that issue."""
    key = index_key(bug_report_id)
    return key if key != bug_report_id else duplicate_of


def trusted_canonical(state: RequestState, by_issue: dict[int, str]) -> str | None:
    """The report this one folds into, through a link a human confirmed or that cleared the
    precision bar; None otherwise.

    A reviewer's ``duplicate_of_issue`` wins (null: no link). Otherwise triage's
    ``duplicate_of`` counts only from a calibrated result (one with ``security_band``):
    before calibration it was set at a similarity that was wrong most of the time, and an
    old false link would chain every later report of that problem to the wrong canonical.
    """
    review = state.progress.get(Step.REVIEW)
    corrections = review.data.get("corrections", {}) if review else {}
    if "duplicate_of_issue" in corrections:
        issue = corrections["duplicate_of_issue"]
        return by_issue.get(issue) if isinstance(issue, int) else None
    triage = state.progress.get(Step.TRIAGE)
    if triage is None or "security_band" not in triage.data:
        return None
    canonical = triage.data.get("duplicate_of") or {}
    found = canonical.get("bug_report_id")
    return str(found) if found else None


def _vector(raw: bytes) -> Embedding | None:
    vector = np.frombuffer(raw, dtype=np.float32)
    return vector if vector.size == DIMENSIONS else None
