"""A notification to a reporter, as it travels on the ``notifications`` topic, and the
JSON body their webhook receives. Which notifications a conversation calls for is
``domain.notify_plan``'s business."""

from __future__ import annotations

import hashlib
from datetime import datetime
from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, Field

from ai_pipeline.domain.resolution import Resolution

UNDER_REVIEW = "received, under review"


class NotifyEvent(StrEnum):
    FILED = "filed"
    NEEDS_INFO = "needs_info"
    RESOLVED = "resolved"


class Channel(StrEnum):
    WEBHOOK = "webhook"
    EMAIL = "email"


class Notification(BaseModel):
    """One message to one destination: the value of a ``notifications`` topic message,
    and, unchanged, of its dead letter (replayed to the topic, it is delivered again)."""

    kind: Literal["notification"] = "notification"
    delivery_id: str
    channel: Channel
    event: NotifyEvent
    request_id: str
    bug_report_id: str
    target: str  # the webhook URL, or the reporter's address
    private: bool = False
    issue_number: int | None = None
    issue_url: str | None = None
    resolution: Resolution | None = None
    questions: list[str] = Field(default_factory=list)  # as asked: sentences, not fields
    reminder: bool = False
    created_at: datetime


def delivery_id(request_id: str, event: NotifyEvent, channel: Channel, moment: str) -> str:
    digest = hashlib.sha256(f"{request_id}|{event}|{channel}|{moment}".encode()).hexdigest()
    return f"d_{digest[:32]}"


def webhook_body(
    notification: Notification, reply_token: str | None, reply_url: str | None
) -> dict[str, Any]:
    """The JSON a reporter's webhook receives (DESIGN.md, "Closing the loop")."""
    n = notification
    body: dict[str, Any] = {
        "event": n.event.value,
        "delivery_id": n.delivery_id,
        "request_id": n.request_id,
        "bug_report_id": n.bug_report_id,
        "issue_url": n.issue_url,
        "resolution": None if n.resolution is None else n.resolution.model_dump(mode="json"),
        "questions": n.questions,
    }
    if n.private:
        body["message"] = UNDER_REVIEW
        return body
    body["reminder"] = n.reminder
    if n.questions and reply_token is not None:
        body["reply_token"] = reply_token
        body["reply_url"] = reply_url
    return body


class DeliveryState(StrEnum):
    PENDING = "pending"  # to be tried at ``next_attempt_at`` (claimed: pushed a lease ahead)
    DELIVERED = "delivered"
    SUPPRESSED = "suppressed"  # not sent: the reporter unsubscribed, or nowhere to send
    DEAD = "dead"  # given up: sent to the dead-letter topic, from which it can be redriven


class Delivery(BaseModel):
    """The delivery ledger's entry for one notification (by delivery id)."""

    notification: Notification
    state: DeliveryState = DeliveryState.PENDING
    attempts: int = 0
    first_attempt_at: datetime | None = None
    next_attempt_at: datetime | None = None
    last_error: str | None = None
    updated_at: datetime

    @property
    def delivery_id(self) -> str:
        return self.notification.delivery_id
