"""The triage agent: a submitted report in, a triage result out."""

from __future__ import annotations

from collections.abc import Sequence

from ai_pipeline.agents.messages import step_ran, to_topic
from ai_pipeline.domain.errors import PermanentError
from ai_pipeline.domain.events import (
    BugReportSubmitted,
    Event,
    ReportTriaged,
    Step,
    Topic,
    utcnow,
)
from ai_pipeline.domain.models import DuplicateCandidate
from ai_pipeline.observability.metrics import Metrics
from ai_pipeline.ports import OutgoingMessage, StateStore
from ai_pipeline.triage.duplicates import DuplicateIndex
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
    ):
        self.engine = engine
        self.index = index
        self.store = store
        self.metrics = metrics
        self.router = router or Router(())

    async def seed_index(self, limit: int) -> int:
        """Fill the duplicate index with the newest stored reports, oldest first."""
        rows = await self.store.recent_reports(limit)
        for state, report in rows[::-1]:
            triage = state.progress.get(Step.TRIAGE)
            if triage is not None and triage.data.get("security_sensitive"):
                continue  # see handle(): never a duplicate target
            self.index.add(
                report.id,
                state.request_id,
                report.title,
                report.full_text(),
                issue_number=state.github_issue_number,
            )
        return len(rows)

    async def handle(self, event: Event) -> Sequence[OutgoingMessage]:
        if not isinstance(event, BugReportSubmitted):
            raise PermanentError(f"triage agent cannot handle {event.kind}")
        started = utcnow()
        report = event.report
        text = report.full_text()
        vector = self.index.vector(report.title, text)
        candidates = self.index.search(vector, k=5, exclude_bug_report_id=report.id)
        result = await self.engine.triage(report, await self._with_issue_numbers(candidates))
        result = self.router.apply(report, result)
        if not result.security_sensitive:
            # A report held for private handling must never be offered as the duplicate of a
            # public one: the link would disclose it.
            self.index.add(report.id, event.request_id, report.title, text, vector=vector)
        for field, value in result.confidence.items():
            self.metrics.triage_confidence.labels(field).observe(value)
        triaged = ReportTriaged(request_id=event.request_id, report=report, triage=result)
        return [
            *step_ran(
                event.request_id, Step.TRIAGE, started, utcnow(), result.model_dump(mode="json")
            ),
            to_topic(Topic.TRIAGE_RESULTS, event.request_id, triaged),
        ]

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
