"""Accepting a report: record it once, put it on the bus, answer only when both are durable."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from ai_pipeline.agents.messages import to_topic
from ai_pipeline.bootstrap import Container
from ai_pipeline.domain.events import (
    BugReportSubmitted,
    Step,
    StepChanged,
    StepStatus,
    Topic,
    utcnow,
)
from ai_pipeline.domain.models import BugReport
from ai_pipeline.domain.request_state import RequestState, RequestStatus, new_request


@dataclass(frozen=True)
class Outcome:
    state: RequestState
    created: bool
    estimate: str


class Submission:
    def __init__(self, container: Container):
        self.c = container

    async def submit(self, report: BugReport, idempotency_key: str | None) -> Outcome:
        now = utcnow()
        fresh = new_request(str(uuid.uuid4()), report.id, now)
        state, created = await self.c.store.create_request(fresh, report, idempotency_key)
        if created:
            self.c.metrics.requests_total.inc()
            await self._publish(state, report)
        elif state.status is RequestStatus.SUBMITTED:
            # The first attempt may have died between recording and publishing: publish
            # again. Every handler is idempotent, so a second copy changes nothing.
            stored = await self.c.store.get_report(state.request_id)
            await self._publish(state, stored or report)
        return Outcome(state, created, self._estimate())

    async def _publish(self, state: RequestState, report: BugReport) -> None:
        submitted = StepChanged(
            request_id=state.request_id,
            step=Step.SUBMITTED,
            status=StepStatus.COMPLETED,
            at=state.created_at,
            data={"bug_report_id": report.id},
        )
        event = BugReportSubmitted(
            request_id=state.request_id, report=report, submitted_at=state.created_at
        )
        await self.c.bus.publish(
            [
                to_topic(Topic.BUG_REPORTS, state.request_id, event),
                to_topic(Topic.STATUS_UPDATES, state.request_id, submitted),
            ]
        )

    def _estimate(self) -> str:
        seconds = self.c.coordinator.typical_processing_seconds
        return f"{max(1, round(seconds))} seconds" if seconds else "a few seconds"
