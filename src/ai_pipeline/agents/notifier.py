"""The notifier agent: follows each filed issue's conversation on the status-updates log
(its own consumer group) and says which notifications go out.

A request's conversation starts when its issue is filed and is folded from the same log
as the request state: resolutions, replies, reminders. What the reporter is told comes
out as ``notifications`` messages, each with a delivery id made from what it says, so a
redelivered event plans the same notification again and the delivery ledger sends it
once. Planning never waits on a receiver: the delivery agent does that.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime

from ai_pipeline.agents.messages import to_topic
from ai_pipeline.domain import conversation as conversations
from ai_pipeline.domain import notify_plan
from ai_pipeline.domain.conversation import Conversation, ConversationEvent
from ai_pipeline.domain.errors import TransientError
from ai_pipeline.domain.events import Event, Step, StepChanged, StepStatus, Topic, utcnow
from ai_pipeline.domain.loop_events import (
    IssueResolutionChanged,
    NeedsInfoReminded,
    ReporterReplied,
)
from ai_pipeline.domain.notifications import Notification
from ai_pipeline.loop_ports import LoopStore
from ai_pipeline.observability.logging import get_logger
from ai_pipeline.observability.metrics import Metrics
from ai_pipeline.ports import OutgoingMessage, StateStore

log = get_logger(__name__)


class NotifierAgent:
    def __init__(
        self,
        store: StateStore,
        loop: LoopStore,
        metrics: Metrics,
        clock: Callable[[], datetime] = utcnow,
    ):
        self.store = store
        self.loop = loop
        self.metrics = metrics
        self.clock = clock

    async def handle(self, event: Event) -> Sequence[OutgoingMessage]:
        if isinstance(event, StepChanged):
            if is_filing(event):
                return _messages(notify_plan.filed(await self.record_filing(event), self.clock()))
            return []
        if isinstance(event, IssueResolutionChanged | ReporterReplied | NeedsInfoReminded):
            return _messages(await self._changed(event))
        return []

    async def record_filing(self, filed: StepChanged) -> Conversation:
        """The conversation of a request just filed, started once (a rebuild uses it too)."""
        known = await self.loop.get_conversation(filed.request_id)
        if known is not None:
            return known
        state = await self.store.get(filed.request_id)
        report = await self.store.get_report(filed.request_id)
        if state is None or report is None:
            # The store was flushed and not rebuilt yet: `ai-pipeline state rebuild`.
            raise TransientError(f"request {filed.request_id} is not in the state store")
        conversation = conversations.start(state, report, filed)
        await self.loop.put_conversation(conversation)
        return conversation

    async def record(self, event: ConversationEvent) -> tuple[Conversation, bool] | None:
        """Fold ``event`` into its conversation: (the conversation now, whether it changed);
        None when the request has none (never filed, or long gone)."""
        current = await self.loop.get_conversation(event.request_id)
        if current is None:
            log.warning("conversation_unknown", request_id=event.request_id, kind=event.kind)
            return None
        changed = conversations.fold(current, event)
        if changed is None:
            return current, False
        await self.loop.put_conversation(changed)
        return changed, True

    async def _changed(self, event: ConversationEvent) -> list[Notification]:
        recorded = await self.record(event)
        if recorded is None:
            return []
        now, changed = recorded
        if isinstance(event, IssueResolutionChanged):
            if changed:
                self._count(now, event)
            # Planned again on a redelivery: the delivery id is the same, sent once.
            if now.resolution == event.resolution:
                return notify_plan.resolved(now, self.clock())
        if isinstance(event, NeedsInfoReminded) and now.reminded_at == event.at:
            return notify_plan.reminder(now, self.clock())
        return []

    def _count(self, conversation: Conversation, event: IssueResolutionChanged) -> None:
        state = event.resolution.state
        if state.resolved:
            self.metrics.loop.resolved.labels(state.value).inc()
            seconds = (event.resolution.at - conversation.filed_at).total_seconds()
            self.metrics.loop.time_to_resolution.observe(max(0.0, seconds))
        elif state.value == "reopened":
            self.metrics.loop.reopened.inc()


def is_filing(event: StepChanged) -> bool:
    return (
        event.step is Step.GITHUB
        and event.status is StepStatus.COMPLETED
        and event.issue is not None
    )


def _messages(notifications: list[Notification]) -> list[OutgoingMessage]:
    return [to_topic(Topic.NOTIFICATIONS, n.request_id, n) for n in notifications]
