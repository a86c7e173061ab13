"""The review queue: reports held for a maintainer, listed, corrected and released.

A release publishes the corrected triage result to ``triage-results`` (marked reviewed, so
it is drafted and filed, never held again) together with the review step's completion, and
keeps the correction as a labelled example for ``ai-pipeline train``. Two releases of one
report at once both publish: the second draft is filed by the tracker's ledger as the same
issue, so nothing is filed twice.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ai_pipeline.agents.messages import to_topic
from ai_pipeline.bootstrap import Container
from ai_pipeline.domain.events import ReportTriaged, Step, StepChanged, StepStatus, Topic, utcnow
from ai_pipeline.domain.models import TriageResult
from ai_pipeline.domain.paging import pagination
from ai_pipeline.domain.request_state import RequestState
from ai_pipeline.domain.review import Correction, corrected, training_example


class NotFound(LookupError):
    pass


class NotHeld(ValueError):
    pass


@dataclass(frozen=True)
class Released:
    request_id: str
    triage: TriageResult


class ReviewQueue:
    def __init__(self, container: Container):
        self.c = container
        self.policy = container.settings.hold_policy()

    async def page(self, limit: int, offset: int) -> dict[str, Any]:
        page = await self.c.store.list_held(limit, offset)
        items = [await self._item(state) for state in page.requests]
        return {
            "hold": list(self.policy.reasons),
            "reviews": [item for item in items if item is not None],
            "pagination": pagination(page.total, limit, offset, len(page.requests)),
        }

    async def _item(self, state: RequestState) -> dict[str, Any] | None:
        report = await self.c.store.get_report(state.request_id)
        triage = state.progress.get(Step.TRIAGE)
        review = state.progress.get(Step.REVIEW)
        if report is None or triage is None or review is None:
            return None  # rebuilt from the log and not yet given its report back
        return {
            "request_id": state.request_id,
            "bug_report_id": state.bug_report_id,
            "title": report.title,
            "description": report.description,
            "held_at": review.timestamp.isoformat(),
            "reasons": review.data.get("reasons", []),
            "triage": triage.data,
        }

    async def release(
        self, request_id: str, correction: Correction, reviewer: str | None
    ) -> Released:
        """Raises NotFound, NotHeld, or ValueError for a correction that cannot apply."""
        state = await self.c.store.get(request_id)
        if state is None:
            raise NotFound(request_id)
        if not state.held_for_review:
            raise NotHeld(
                f"request {request_id} is not waiting for review"
                f" (status {state.status.value}, step {state.current_step.value})"
            )
        report = await self.c.store.get_report(request_id)
        triaged = state.progress.get(Step.TRIAGE)
        review = state.progress[Step.REVIEW]
        if report is None or triaged is None:
            raise NotHeld(f"request {request_id} has no stored report or triage result yet")
        result = corrected(TriageResult.model_validate(triaged.data), correction)
        now = utcnow()
        await self.c.store.put_review_example(
            request_id, training_example(request_id, report, result, now)
        )
        released = StepChanged(
            request_id=request_id,
            step=Step.REVIEW,
            status=StepStatus.COMPLETED,
            at=now,
            data={
                "reasons": review.data.get("reasons", []),
                "corrections": correction.changed(),
                "reviewer": reviewer,
            },
        )
        event = ReportTriaged(request_id=request_id, report=report, triage=result, reviewed=True)
        await self.c.bus.publish(
            [
                to_topic(Topic.TRIAGE_RESULTS, request_id, event),
                to_topic(Topic.STATUS_UPDATES, request_id, released),
            ]
        )
        return Released(request_id, result)
