"""Accepting a report: record it once, put it on the bus, answer only when both are durable."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from ai_pipeline.agents.messages import to_topic
from ai_pipeline.bootstrap import Container
from ai_pipeline.domain.errors import UnavailableError
from ai_pipeline.domain.events import (
    BugReportSubmitted,
    Step,
    StepChanged,
    StepStatus,
    Topic,
    utcnow,
)
from ai_pipeline.domain.ids import new_request_id
from ai_pipeline.domain.models import BugReport
from ai_pipeline.domain.request_state import RequestState, RequestStatus, new_request
from ai_pipeline.domain.submissions import OPEN_SCOPE
from ai_pipeline.ports import OutgoingMessage


@dataclass(frozen=True)
class Outcome:
    state: RequestState
    created: bool
    estimate: str

    @property
    def message(self) -> str:
        """What the submitter is told."""
        if self.created:
            return "Bug report accepted for processing"
        if self.state.status is RequestStatus.FAILED:
            return (
                "This report was already submitted and its request failed (see its status);"
                " once the cause is fixed, an operator replays it with"
                f" `ai-pipeline redrive --request {self.state.request_id}`"
            )
        return "This report was already submitted; returning the existing request"


class Submission:
    def __init__(self, container: Container):
        self.c = container

    async def submit(
        self, report: BugReport, idempotency_key: str | None, submitter: str = OPEN_SCOPE
    ) -> Outcome:
        """``submitter``: the scope its id is known in (``domain.submissions``). Raises
        ``IdConflict`` when that scope used the id or key for another report."""
        # A down broker or store must not hold the client for minutes: answer 503, and the
        # retry (same id) finds the request; what was queued is still delivered.
        try:
            async with asyncio.timeout(self.c.settings.submit_timeout_seconds):
                return await self._submit(report, idempotency_key, submitter)
        except TimeoutError:
            raise UnavailableError("accepting the report timed out") from None

    async def _submit(
        self, report: BugReport, idempotency_key: str | None, submitter: str
    ) -> Outcome:
        now = utcnow()
        fresh = new_request(new_request_id(), report.id, now)
        first = self._first_messages(fresh, report, idempotency_key, submitter)
        state, created = await self.c.store.create_request(
            fresh, report, idempotency_key, outbox=first, submitter=submitter
        )
        if created:
            self.c.metrics.requests_total.inc()
        elif (
            state.status is RequestStatus.SUBMITTED and not self.c.store.publishes_outbox_atomically
        ):
            # The first attempt may have died between recording and publishing: publish
            # again. Handlers are idempotent, so a second copy changes nothing.
            stored = await self.c.store.get_report(state.request_id)
            again = self._first_messages(state, stored or report, idempotency_key, submitter)
            await self.c.bus.publish(again)
        return Outcome(state, created, self._estimate())

    def _first_messages(
        self,
        state: RequestState,
        report: BugReport,
        idempotency_key: str | None,
        submitter: str,
    ) -> list[OutgoingMessage]:
        submitted = StepChanged(
            request_id=state.request_id,
            step=Step.SUBMITTED,
            status=StepStatus.COMPLETED,
            at=state.created_at,
            data={"bug_report_id": report.id},
        )
        event = BugReportSubmitted(
            request_id=state.request_id,
            report=report,
            submitted_at=state.created_at,
            idempotency_key=idempotency_key,
            submitter=submitter,
        )
        return [
            to_topic(Topic.BUG_REPORTS, state.request_id, event),
            to_topic(Topic.STATUS_UPDATES, state.request_id, submitted),
        ]

    def _estimate(self) -> str:
        seconds = self.c.coordinator.typical_processing_seconds
        return f"{max(1, round(seconds))} seconds" if seconds else "a few seconds"
