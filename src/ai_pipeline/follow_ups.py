"""The follow-up rules (``domain.follow_up``) run against the trackers: every conversation
with open questions is judged on its issue's timeline, and the reminder or the close is
carried out, each once (its comment carries its own marker and is looked for first).

``ai-pipeline follow-up --dry-run`` lists what would be done and changes nothing; the
service runs it every ``AI_PIPELINE_FOLLOW_UP_INTERVAL_SECONDS`` where the reply agent
runs. Trackers without a timeline yet (GitHub: its webhook receiver brings one) are
skipped.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime

from ai_pipeline.agents.messages import to_topic
from ai_pipeline.domain.conversation import Conversation
from ai_pipeline.domain.events import Topic, utcnow
from ai_pipeline.domain.follow_up import Action, ActionKind, Policy, decide
from ai_pipeline.domain.loop_events import NeedsInfoReminded
from ai_pipeline.domain.resolution import CloseReason
from ai_pipeline.drafting.loop_text import closing_comment, reminder_comment
from ai_pipeline.loop_ports import ConversationTracker, LoopStore
from ai_pipeline.observability.logging import get_logger
from ai_pipeline.observability.metrics import Metrics
from ai_pipeline.ports import Bus, StateStore, Tracker
from ai_pipeline.resolution import record_resolution

log = get_logger(__name__)
PAGE = 200


class FollowUps:
    def __init__(
        self,
        loop: LoopStore,
        bus: Bus,
        store: StateStore,
        trackers: Mapping[str, Tracker],
        conversation_trackers: Mapping[str, ConversationTracker],
        policy: Policy,
        metrics: Metrics,
        clock: Callable[[], datetime] = utcnow,
    ):
        self.loop = loop
        self.bus = bus
        self.store = store
        self.trackers = trackers
        self.conversation_trackers = conversation_trackers
        self.policy = policy
        self.metrics = metrics
        self.clock = clock

    async def run(self, dry_run: bool = False) -> list[Action]:
        """Judge every conversation with open questions; act unless ``dry_run``. Returns
        the actions (and the closes held back, ``keep``, with their reason)."""
        now = self.clock()
        actions: list[Action] = []
        after = ""
        while page := await self.loop.needing_info(PAGE, after):
            after = page[-1].request_id
            for conversation in page:
                action = await self._judge(conversation, now)
                if action is None:
                    continue
                actions.append(action)
                if not dry_run and action.kind is not ActionKind.KEEP:
                    await self._act(conversation, action, now)
        return actions

    async def _judge(self, conversation: Conversation, now: datetime) -> Action | None:
        acting = self.conversation_trackers.get(conversation.tracker)
        if acting is None:
            return None
        view = await acting.issue_view(conversation.issue_number)
        return None if view is None else decide(conversation, view, self.policy, now)

    async def _act(self, conversation: Conversation, action: Action, now: datetime) -> None:
        c = conversation
        tracker = self.trackers[c.tracker]
        if action.kind is ActionKind.REMIND:
            key = f"{c.request_id}:remind"
            await _comment_once(tracker, key, c.issue_number, reminder_comment(key, c.remaining))
            reminded = NeedsInfoReminded(request_id=c.request_id, at=now)
            await self.bus.publish([to_topic(Topic.STATUS_UPDATES, c.request_id, reminded)])
        else:
            key = f"{c.request_id}:close"
            days = action.reason.partition(",")[0].removeprefix("questions unanswered for ")
            await _comment_once(tracker, key, c.issue_number, closing_comment(key, days))
            acting = self.conversation_trackers[c.tracker]
            change = await acting.close_issue(c.issue_number, CloseReason.NOT_PLANNED, "us")
            if change.resolution is None:
                return
            await record_resolution(
                self.bus,
                self.loop,
                self.store,
                tracker=c.tracker,
                issue_number=c.issue_number,
                resolution=change.resolution,
                source="follow_up",
            )
        self.metrics.loop.follow_ups.labels(action.kind.value).inc()
        log.info(
            "follow_up",
            action=action.kind.value,
            request_id=c.request_id,
            issue_number=c.issue_number,
            reason=action.reason,
        )


async def _comment_once(tracker: Tracker, key: str, number: int, body: str) -> None:
    if await tracker.find_comment(key, number) is None:
        await tracker.add_comment(key, number, body)
