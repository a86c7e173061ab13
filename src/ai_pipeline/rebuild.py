"""Rebuild the state store from the log: ``ai-pipeline state rebuild``.

The status-updates topic is the record of truth; the store is a view of it. Folding is
monotonic (an event at or below a request's rank changes nothing), so a rebuild can run
while agents run, and twice in a row does nothing the second time.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from pydantic import ValidationError

from ai_pipeline.agents.delivery import DeliveryAgent
from ai_pipeline.agents.notifier import NotifierAgent, is_filing
from ai_pipeline.domain.errors import TransientError
from ai_pipeline.domain.events import (
    BugReportSubmitted,
    Event,
    Step,
    StepChanged,
    StepStatus,
    Topic,
)
from ai_pipeline.domain.events import decode as decode_event
from ai_pipeline.domain.loop_events import (
    IssueResolutionChanged,
    NeedsInfoReminded,
    ReporterReplied,
)
from ai_pipeline.domain.models import FiledIssue
from ai_pipeline.domain.notifications import Notification
from ai_pipeline.domain.submissions import scope_of
from ai_pipeline.observability.logging import get_logger
from ai_pipeline.ports import Bus, FilingRecord, Message, StateStore

if TYPE_CHECKING:
    from ai_pipeline.bootstrap import LoopParts

log = get_logger(__name__)
Progress = Callable[[str, int], None]  # (phase, messages just done)
LANES = 32


@dataclass
class RebuildReport:
    events: int = 0
    changed: int = 0
    reports: int = 0
    ledger_filed: int = 0
    ledger_pending: int = 0
    skipped: int = 0
    conversations: int = 0
    deliveries_requeued: int = 0
    requests: set[str] = field(default_factory=set)


async def rebuild_state(
    bus: Bus,
    store: StateStore,
    progress: Progress | None = None,
    loop: LoopParts | None = None,
) -> RebuildReport:
    """``loop``: also the conversations with reporters (from the same log, once the
    requests and reports are back) and the notifications not known delivered."""
    report = RebuildReport()
    tick = progress or (lambda _phase, _n: None)
    async for chunk in bus.replay(Topic.STATUS_UPDATES.value):
        await _by_request(chunk, lambda m: _apply(store, m, report))
        tick("status-updates", len(chunk))
    async for chunk in bus.replay(Topic.BUG_REPORTS.value):
        await _by_request(chunk, lambda m: _restore_report(store, m, report))
        tick("bug-reports", len(chunk))
    await _restore_ledger(store, report)
    if loop is not None:
        notifier, delivery = loop.notifier, loop.delivery
        async for chunk in bus.replay(Topic.STATUS_UPDATES.value):
            await _by_request(chunk, lambda m: _converse(notifier, m, report))
            tick("conversations", len(chunk))
        async for chunk in bus.replay(Topic.NOTIFICATIONS.value):
            await _by_request(chunk, lambda m: _requeue(delivery, m, report))
            tick("notifications", len(chunk))
    log.info(
        "state_rebuilt",
        events=report.events,
        changed=report.changed,
        requests=len(report.requests),
        reports=report.reports,
        ledger_filed=report.ledger_filed,
        ledger_pending=report.ledger_pending,
        skipped=report.skipped,
        conversations=report.conversations,
        deliveries_requeued=report.deliveries_requeued,
    )
    return report


async def _by_request(chunk: Sequence[Message], work: Callable[[Message], Awaitable[None]]) -> None:
    """Requests in parallel, each request's messages in log order."""
    lanes: dict[str, list[Message]] = defaultdict(list)
    for message in chunk:
        lanes[message.key].append(message)

    # Bounded, so a rebuild shares the store with a running service instead of flooding it.
    room = asyncio.Semaphore(LANES)

    async def lane(messages: list[Message]) -> None:
        async with room:
            for message in messages:
                await work(message)

    await asyncio.gather(*(lane(messages) for messages in lanes.values()))


async def _apply(store: StateStore, message: Message, report: RebuildReport) -> None:
    event = _decoded(message, report)
    if event is None:
        return
    if isinstance(event, NeedsInfoReminded):
        return  # the conversation's, not the request's (rebuilt by ``_conversations``)
    if not isinstance(event, StepChanged | IssueResolutionChanged | ReporterReplied):
        report.skipped += 1
        return
    report.events += 1
    if await store.apply(event) is not None:
        report.changed += 1
    report.requests.add(event.request_id)


async def _converse(notifier: NotifierAgent, message: Message, report: RebuildReport) -> None:
    """The conversation folded as the notifier agent folds it, without notifying."""
    try:
        event = decode_event(message.value)
    except ValidationError:
        return  # counted as skipped by the first pass
    if isinstance(event, StepChanged) and is_filing(event):
        try:
            await notifier.record_filing(event)
        except TransientError:
            return  # its request (or report) is no longer in the log
        report.conversations += 1
    elif isinstance(event, IssueResolutionChanged | ReporterReplied | NeedsInfoReminded):
        await notifier.record(event)


async def _requeue(delivery: DeliveryAgent, message: Message, report: RebuildReport) -> None:
    event = _decoded(message, report)
    if isinstance(event, Notification) and await delivery.restore(event, message.timestamp):
        report.deliveries_requeued += 1


async def _restore_report(store: StateStore, message: Message, report: RebuildReport) -> None:
    event = _decoded(message, report)
    if isinstance(event, BugReportSubmitted) and await store.put_report(
        event.request_id, event.report, event.idempotency_key, scope_of(event.submitter)
    ):
        report.reports += 1


def _decoded(message: Message, report: RebuildReport) -> Event | None:
    try:
        return decode_event(message.value)
    except ValidationError:
        report.skipped += 1  # a poison message: it sits in the log, dead-lettered already
        return None


async def _restore_ledger(store: StateStore, report: RebuildReport) -> None:
    """The filing ledger, from what the states say about the tracker step.

    Filed issues are known from their events. A request drafted but not known filed may
    have been created just before the flush: it is marked ``pending``, which makes the
    tracker agent search for its marker before creating anything. Failed ones too: a
    redrive may reopen them, and a create of theirs may have landed before they failed.
    """
    for request_id in sorted(report.requests):
        state = await store.get(request_id)
        if state is None or await store.get_filing(request_id) is not None:
            continue
        if state.github_issue_number is not None and state.github_issue_url is not None:
            issue = FiledIssue(number=state.github_issue_number, url=state.github_issue_url)
            await store.put_filing(FilingRecord(request_id, "filed", issue))
            report.ledger_filed += 1
            continue
        drafted = state.progress.get(Step.TICKET_CREATION)
        if drafted is not None and drafted.status is StepStatus.COMPLETED:
            await store.put_filing(FilingRecord(request_id, "pending", None))
            report.ledger_pending += 1
