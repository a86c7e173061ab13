"""The coordinator: folds step events into request state and fails what is stuck."""

from __future__ import annotations

import time
from collections.abc import Collection, Sequence
from datetime import timedelta

from ai_pipeline.agents.messages import to_topic
from ai_pipeline.domain.errors import PermanentError
from ai_pipeline.domain.events import Event, Step, StepChanged, StepStatus, Topic, utcnow
from ai_pipeline.domain.loop_events import (
    IssueResolutionChanged,
    NeedsInfoReminded,
    ReporterReplied,
)
from ai_pipeline.domain.request_state import RequestState, RequestStatus
from ai_pipeline.observability.metrics import Metrics
from ai_pipeline.ports import Bus, OutgoingMessage, StateStore


class Coordinator:
    def __init__(self, store: StateStore, bus: Bus, metrics: Metrics, step_timeout: float):
        self.store = store
        self.bus = bus
        self.metrics = metrics
        self.step_timeout = step_timeout
        self._since = time.monotonic()
        self.typical_processing_seconds: float | None = None

    async def handle(self, event: Event) -> Sequence[OutgoingMessage]:
        if isinstance(event, NeedsInfoReminded):
            return []  # the conversation's business (agents.notifier), not the request's
        if not isinstance(event, StepChanged | IssueResolutionChanged | ReporterReplied):
            raise PermanentError(f"coordinator cannot handle {event.kind}")
        state = await self.store.apply(event)
        if isinstance(event, StepChanged) and state is not None and state.status.terminal:
            self._count_terminal(state)
        return []

    def _count_terminal(self, state: RequestState) -> None:
        if state.status is RequestStatus.FAILED:
            self.metrics.requests_failed_total.inc()
            return
        self.metrics.requests_completed_total.inc()
        seconds = state.processing_time_seconds
        if seconds is not None:
            self.metrics.processing_time.observe(seconds)
            # A moving average is enough for the estimate a submitter is shown.
            previous = self.typical_processing_seconds
            self.typical_processing_seconds = (
                seconds if previous is None else 0.95 * previous + 0.05 * seconds
            )

    async def fail_stuck(self, moving: Collection[Step] = (), limit: int = 500) -> int:
        """Fail requests with no progress for ``step_timeout`` seconds; returns how many.

        Time the service was down does not count: a request is judged only after the
        coordinator itself has been up for a whole timeout. Nor does time queued behind a
        backlog: a request waiting on a step in ``moving`` (its agent is working through
        a queue) is late, not stuck.
        """
        if time.monotonic() - self._since < self.step_timeout:
            return 0
        cutoff = utcnow() - timedelta(seconds=self.step_timeout)
        stuck = [s for s in await self.store.stuck(cutoff, limit) if _waiting_on(s) not in moving]
        messages = [
            to_topic(Topic.STATUS_UPDATES, state.request_id, self._timeout_event(state))
            for state in stuck
        ]
        if messages:
            await self.bus.publish(messages)
        return len(messages)

    def _timeout_event(self, state: RequestState) -> StepChanged:
        step = _waiting_on(state)
        return StepChanged(
            request_id=state.request_id,
            step=step,
            status=StepStatus.FAILED,
            error=(
                f"timed out: no progress in step '{step.value}' for more than"
                f" {self.step_timeout:g} s"
            ),
        )


def _waiting_on(state: RequestState) -> Step:
    """The step a request is stuck in: the current one, or the next once it completed."""
    progress = state.progress.get(state.current_step)
    if progress is not None and progress.status is StepStatus.COMPLETED:
        # Review happens only to held reports: a triaged one waits on drafting.
        steps = [s for s in Step if s is not Step.REVIEW]
        index = steps.index(
            Step.TRIAGE if state.current_step is Step.REVIEW else state.current_step
        )
        return steps[min(index + 1, len(steps) - 1)]
    return state.current_step
