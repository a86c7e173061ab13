"""Helpers agents use to say what happened: step events and next-topic messages."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel

from ai_pipeline.domain.events import Step, StepChanged, StepStatus, Topic, encode
from ai_pipeline.domain.models import FiledIssue
from ai_pipeline.ports import OutgoingMessage


def to_topic(topic: Topic, request_id: str, event: BaseModel) -> OutgoingMessage:
    return OutgoingMessage(topic.value, request_id, encode(event))


def step_ran(
    request_id: str,
    step: Step,
    started: datetime,
    finished: datetime,
    data: dict[str, Any],
    issue: FiledIssue | None = None,
) -> list[OutgoingMessage]:
    """The one event of a step that ran from ``started`` to ``finished``.

    Quick steps are reported once, when over; a separate "started" event would double the
    coordinator's writes and tell nobody anything in the milliseconds it is current.
    """
    event = StepChanged(
        request_id=request_id,
        step=step,
        status=StepStatus.COMPLETED,
        at=finished,
        started_at=started,
        data=data,
        issue=issue,
    )
    return [to_topic(Topic.STATUS_UPDATES, request_id, event)]


def dead_letter(
    topic: str,
    key: str,
    value: bytes,
    *,
    reason: str,
    agent: str,
    attempts: int,
    headers: dict[str, str] | None = None,
    partition: int | None = None,
    offset: int | None = None,
) -> OutgoingMessage:
    """The dead letter of a message of ``topic``: the same key and value, so replaying it
    to ``topic`` (``dlq-source-topic``) processes it again, and why it died in headers."""
    return OutgoingMessage(
        f"{topic}.dlq",
        key,
        value,
        {
            **(headers or {}),
            "dlq-reason": reason[:2000],
            "dlq-agent": agent,
            "dlq-source-topic": topic,
            "dlq-source-partition": "" if partition is None else str(partition),
            "dlq-source-offset": "" if offset is None else str(offset),
            "dlq-attempts": str(attempts),
        },
    )
