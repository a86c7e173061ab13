"""The reply agent: posts a reporter's reply on their issue, exactly once, and says which of
the questions it answered.

Exactly once as filing is: the reply ledger is written ``pending`` before the comment and
``posted`` after it, and a pending (or unknown) reply is first looked for on the tracker
by its own marker (``<request>:reply:<id>``), so a redelivered reply or a process killed
mid-call never posts twice. The reply is redacted and made inert like a report.

Missing information is checked again by the triage rules: a reply answers the questions
it fills. Once every question is answered, the issue loses ``needs-info`` and its body's
questions are marked answered (on trackers that can: the local one now).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from ai_pipeline.agents.messages import to_topic
from ai_pipeline.domain.conversation import Conversation
from ai_pipeline.domain.errors import PermanentError, TransientError
from ai_pipeline.domain.events import Event, Topic
from ai_pipeline.domain.loop_events import ReplyReceived, ReporterReplied
from ai_pipeline.domain.redaction import Redactor
from ai_pipeline.domain.replies import ReplyRecord, ReplyState, answered_by, comment_key
from ai_pipeline.drafting.loop_text import reply_comment
from ai_pipeline.loop_ports import ConversationTracker, LoopStore
from ai_pipeline.observability.logging import get_logger
from ai_pipeline.observability.metrics import Metrics
from ai_pipeline.ports import OutgoingMessage, Tracker

log = get_logger(__name__)


class ReplyAgent:
    def __init__(
        self,
        loop: LoopStore,
        trackers: Mapping[str, Tracker],
        conversation_trackers: Mapping[str, ConversationTracker],
        redactor: Redactor,
        metrics: Metrics,
    ):
        self.loop = loop
        self.trackers = trackers
        self.conversation_trackers = conversation_trackers
        self.redactor = redactor
        self.metrics = metrics

    async def handle(self, event: Event) -> Sequence[OutgoingMessage]:
        if not isinstance(event, ReplyReceived):
            raise PermanentError(f"reply agent cannot handle {event.kind}")
        conversation = await self.loop.get_conversation(event.request_id)
        if conversation is None:
            # Accepted while the filing was being recorded: it comes within moments.
            raise TransientError(f"request {event.request_id} has no filed issue yet")
        tracker = self.trackers.get(conversation.tracker)
        if tracker is None:
            raise PermanentError(f"the tracker {conversation.tracker!r} is not configured here")
        record = await self.loop.get_reply(event.reply_id)
        if record is None or record.state is not ReplyState.POSTED:
            record = await self._post(event, tracker, conversation)
        answered = {
            field
            for reply in await self.loop.replies_of(event.request_id)
            if reply.state is ReplyState.POSTED
            for field in reply.answered
        }
        complete = bool(conversation.questions) and set(conversation.questions) <= answered
        self.metrics.loop.replies.labels("answered_all" if complete else "posted").inc()
        if complete:
            await self._questions_answered(conversation)
        replied = ReporterReplied(
            request_id=event.request_id,
            reply_id=event.reply_id,
            at=event.at,
            answered=record.answered,
            comment_url=record.comment_url,
        )
        return [to_topic(Topic.STATUS_UPDATES, event.request_id, replied)]

    async def _post(
        self, event: ReplyReceived, tracker: Tracker, conversation: Conversation
    ) -> ReplyRecord:
        pending = ReplyRecord(
            reply_id=event.reply_id,
            request_id=event.request_id,
            text=event.text,
            at=event.at,
            by=event.by,
            answered=answered_by(event.text, conversation.questions, conversation.reporter),
        )
        await self.loop.put_reply(pending)
        key = comment_key(event.request_id, event.reply_id)
        number = conversation.issue_number
        comment = await tracker.find_comment(key, number)
        if comment is None:
            body = reply_comment(key, event.text, self.redactor)
            comment = await tracker.add_comment(key, number, body)
        posted = pending.model_copy(update={"state": ReplyState.POSTED, "comment_url": comment.url})
        await self.loop.put_reply(posted)
        return posted

    async def _questions_answered(self, conversation: Conversation) -> None:
        c = conversation
        acting = self.conversation_trackers.get(c.tracker)
        if acting is None:
            # GitHub's label operations come with its webhook receiver (issue 14).
            log.info("needs_info_label_left", tracker=c.tracker, issue_number=c.issue_number)
            return
        await acting.questions_answered(c.issue_number, c.questions)
