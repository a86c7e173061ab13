"""Replay failed or dead-lettered requests: ``ai-pipeline redrive``.

A refusal (a 401, 403 or 404 from GitHub, a renamed repository) fails a request for good,
and that is right while the cause lasts. Once an operator fixed it, a redrive reopens the
request at the step that failed and publishes that step's input again:

1. a ``redriven`` status event goes on the status-updates log, the record of truth, so a
   rebuild folds the request back open at the same point (``domain.request_state``);
2. the same event is applied to the store at once: the agent must find the request open,
   not failed (it skips failed ones);
3. the step's input goes back on its topic: rebuilt from the stored report (and triage
   result), or the dead letter itself (its headers name the topic it came from).

Exactly-once filing still holds: the tracker agent finds a request filed before it failed
in its ledger, or by its marker, and never creates it again.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pydantic import ValidationError

from ai_pipeline.agents.messages import to_topic
from ai_pipeline.domain.events import (
    BugReportSubmitted,
    ReportTriaged,
    Step,
    StepChanged,
    StepStatus,
    Topic,
    decode,
)
from ai_pipeline.domain.models import TriageResult
from ai_pipeline.domain.request_state import RequestState, RequestStatus
from ai_pipeline.domain.review import Correction, corrected
from ai_pipeline.ports import Bus, Message, OutgoingMessage, StateStore

PAGE = 100
# The step whose input each topic carries. None: no request step, every letter replayed in
# order (status updates are the coordinator's; a request has several notifications and
# replies, each delivered once by its own ledger).
STEP_OF_TOPIC: dict[str, Step | None] = {
    Topic.BUG_REPORTS.value: Step.TRIAGE,
    Topic.TRIAGE_RESULTS.value: Step.TICKET_CREATION,
    Topic.TICKET_CREATION.value: Step.GITHUB,
    Topic.STATUS_UPDATES.value: None,
    Topic.NOTIFICATIONS.value: None,
    Topic.REPLIES.value: None,
}
Progress = Callable[[int], None]


@dataclass(frozen=True)
class Redrive:
    """One request to replay, or why not (``skipped``)."""

    request_id: str
    step: Step | None  # where the request resumes; None: a message with no request step
    topic: str  # where its input goes again
    source: str  # "store", or the dead letter's "<topic>@<partition>/<offset>"
    message: OutgoingMessage | None = None
    skipped: str | None = None

    def row(self, dry_run: bool) -> dict[str, Any]:
        action = "skipped" if self.skipped else "would redrive" if dry_run else "redriven"
        return {
            "request_id": self.request_id,
            "step": self.step.value if self.step else None,
            "topic": self.topic,
            "source": self.source,
            "action": action,
            "reason": self.skipped,
        }


async def plan_requests(store: StateStore, request_ids: Iterable[str]) -> list[Redrive]:
    return [await _from_store(store, rid, await store.get(rid)) for rid in request_ids]


async def plan_failed_since(store: StateStore, since: datetime) -> list[Redrive]:
    """Every request that failed at or after ``since``."""
    return [
        await _from_store(store, state.request_id, state)
        async for state in _failed(store)
        if (state.completed_at or state.updated_at) >= since
    ]


async def plan_dead_letters(bus: Bus, store: StateStore, dead_topic: str) -> list[Redrive]:
    """The dead letters of ``dead_topic`` (``<topic>.dlq``): the newest per request, or, on
    status-updates.dlq, every one in order (each is a status event of its own)."""
    source_topic = dead_topic.removesuffix(".dlq")
    if not dead_topic.endswith(".dlq") or source_topic not in STEP_OF_TOPIC:
        known = ", ".join(f"{t}.dlq" for t in STEP_OF_TOPIC)
        raise ValueError(f"{dead_topic!r} is not a dead-letter topic: one of {known}")
    step = STEP_OF_TOPIC[source_topic]
    letters: list[Message] = []
    async for chunk in bus.replay(dead_topic):
        letters.extend(chunk)
    if step is not None:
        newest = {m.key: m for m in sorted(letters, key=lambda m: m.timestamp)}
        letters = list(newest.values())
    return [await _from_dead_letter(store, m, source_topic, step) for m in letters]


async def redrive(
    bus: Bus, store: StateStore, plans: Iterable[Redrive], progress: Progress | None = None
) -> int:
    """Reopen each planned request and publish its input again; how many went."""
    done = 0
    for plan in plans:
        if plan.skipped is not None or plan.message is None:
            continue
        if plan.step is not None:
            reopen = StepChanged(
                request_id=plan.request_id,
                step=plan.step,
                status=StepStatus.REDRIVEN,
                data={"source": plan.source},
            )
            await bus.publish([to_topic(Topic.STATUS_UPDATES, plan.request_id, reopen)])
            await store.apply(reopen)
        await bus.publish([plan.message])
        done += 1
        if progress is not None:
            progress(1)
    return done


async def _failed(store: StateStore) -> AsyncIterator[RequestState]:
    offset = 0
    while True:
        page = await store.list_requests([RequestStatus.FAILED], PAGE, offset)
        for state in page.requests:
            yield state
        offset += len(page.requests)
        if not page.requests or offset >= page.total:
            return


async def _from_store(store: StateStore, request_id: str, state: RequestState | None) -> Redrive:
    """The failed step's input, rebuilt from the stored report and triage result. A
    request that failed in triage is triaged again; one that failed later is drafted again
    (the draft is not stored) and so filed from a fresh draft."""
    if state is not None and state.current_step.ordinal <= Step.TRIAGE.ordinal:
        step, topic = Step.TRIAGE, Topic.BUG_REPORTS
    else:
        step, topic = Step.TICKET_CREATION, Topic.TRIAGE_RESULTS
    plan = Redrive(request_id, step, topic.value, "store")
    why = _not_redrivable(state)
    if why is not None or state is None:
        return _skip(plan, why or "unknown request")
    report = await store.get_report(request_id)
    if report is None:
        return _skip(plan, "the store has no report for it (run `ai-pipeline state rebuild`)")
    if step is Step.TRIAGE:
        event: BugReportSubmitted | ReportTriaged = BugReportSubmitted(
            request_id=request_id, report=report, submitted_at=state.created_at
        )
    else:
        triage = _triage_result(state)
        if triage is None:
            return _skip(plan, "the store has no triage result for it")
        reviewed = _reviewed(state)
        if reviewed is not None:
            triage = corrected(triage, reviewed)
        event = ReportTriaged(
            request_id=request_id, report=report, triage=triage, reviewed=reviewed is not None
        )
    return Redrive(request_id, step, topic.value, "store", to_topic(topic, request_id, event))


async def _from_dead_letter(
    store: StateStore, letter: Message, topic: str, step: Step | None
) -> Redrive:
    source = (
        f"{letter.topic}@{letter.headers.get('dlq-source-partition', letter.partition)}"
        f"/{letter.headers.get('dlq-source-offset', letter.offset)}"
    )
    plan = Redrive(letter.key, step, topic, source)
    try:
        decode(letter.value)
    except ValidationError:
        return _skip(plan, "undecodable: it stays dead-lettered")
    if step is not None:
        state = await store.get(letter.key)
        why = _not_redrivable(state)
        if why is None and state is not None and state.current_step is not step:
            why = (
                f"it failed in {state.current_step.value}, not {step.value}:"
                f" `ai-pipeline redrive --request {letter.key}`"
            )
        if why is not None:
            return _skip(plan, why)
    headers = {k: v for k, v in letter.headers.items() if not k.startswith("dlq-")}
    message = OutgoingMessage(topic, letter.key, letter.value, headers)
    return Redrive(letter.key, step, topic, source, message)


def _not_redrivable(state: RequestState | None) -> str | None:
    if state is None:
        return "unknown request (ended longer ago than the store keeps requests?)"
    if state.status is not RequestStatus.FAILED:
        return f"not failed ({state.status.value})"
    return None


def _skip(plan: Redrive, why: str) -> Redrive:
    return Redrive(plan.request_id, plan.step, plan.topic, plan.source, None, why)


def _triage_result(state: RequestState) -> TriageResult | None:
    triaged = state.progress.get(Step.TRIAGE)
    if triaged is None or triaged.status is not StepStatus.COMPLETED:
        return None
    try:
        return TriageResult.model_validate(triaged.data)
    except ValidationError:
        return None


def _reviewed(state: RequestState) -> Correction | None:
    """A maintainer's correction, when the report was held and released: it is filed as
    corrected, and never held again."""
    review = state.progress.get(Step.REVIEW)
    if review is None or review.status is not StepStatus.COMPLETED:
        return None
    return Correction.model_validate(review.data.get("corrections") or {})
