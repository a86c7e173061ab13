"""What the reporter is told, when, and through which channel. Pure: no sending here.

Three moments: the issue is filed (its link, and the questions when information is
missing), a reminder of the questions (``needs_info``), and the issue resolved. A private
or security-sensitive report is told only that it was received and is under review: no
link, no questions, no outcome.

Each notification has a delivery id made from what it says, so planning it twice (a
redelivered event, a replay) gives the same id, which the delivery ledger and the
receiver use to act once.
"""

from __future__ import annotations

from datetime import datetime

from ai_pipeline.domain.conversation import Conversation
from ai_pipeline.domain.notifications import Channel, Notification, NotifyEvent, delivery_id
from ai_pipeline.triage.rules import request_for


def filed(conversation: Conversation, at: datetime) -> list[Notification]:
    """The issue's link, with the questions if information is missing."""
    return _each_channel(conversation, NotifyEvent.FILED, "filed", at)


def reminder(conversation: Conversation, at: datetime) -> list[Notification]:
    if conversation.private or not conversation.remaining:
        return []
    return _each_channel(conversation, NotifyEvent.NEEDS_INFO, "reminder", at, reminder=True)


def resolved(conversation: Conversation, at: datetime) -> list[Notification]:
    resolution = conversation.resolution
    if conversation.private or not resolution.state.resolved:
        return []
    moment = f"{resolution.state}@{resolution.at.isoformat()}"
    return _each_channel(conversation, NotifyEvent.RESOLVED, moment, at)


def _each_channel(
    conversation: Conversation,
    event: NotifyEvent,
    moment: str,
    at: datetime,
    reminder: bool = False,
) -> list[Notification]:
    targets = []
    if conversation.notify.webhook is not None:
        targets.append((Channel.WEBHOOK, conversation.notify.webhook))
    if conversation.notify.email:
        targets.append((Channel.EMAIL, conversation.reporter))
    private = conversation.private
    return [
        Notification(
            delivery_id=delivery_id(conversation.request_id, event, channel, moment),
            channel=channel,
            event=event,
            request_id=conversation.request_id,
            bug_report_id=conversation.bug_report_id,
            target=target,
            private=private,
            issue_number=None if private else conversation.issue_number,
            issue_url=None if private else conversation.issue_url,
            resolution=None if private else conversation.resolution,
            # An outcome asks nothing: the questions go with the link and the reminder.
            questions=[]
            if private or event is NotifyEvent.RESOLVED
            else [request_for(q) for q in conversation.remaining],
            reminder=reminder,
            created_at=at,
        )
        for channel, target in targets
    ]
