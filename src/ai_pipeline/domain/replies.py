"""A reporter's replies: their ids, the keys their comments carry, and what they answer."""

from __future__ import annotations

import hashlib
from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel, Field

from ai_pipeline.domain.models import BugReport
from ai_pipeline.triage.rules import missing_information


def reply_id(request_id: str, text: str, idempotency_key: str | None = None) -> str:
    """The same reply sent twice (a client's retry) is one reply: the id comes from its
    ``Idempotency-Key`` when it has one, else from its text."""
    basis = f"key|{idempotency_key}" if idempotency_key else "text|" + " ".join(text.split())
    digest = hashlib.sha256(f"{request_id}|{basis}".encode()).hexdigest()
    return f"r_{digest[:24]}"


def comment_key(request_id: str, reply: str) -> str:
    """What the comment of a reply is found by on the tracker (its own marker: each reply
    is posted once, whatever else was posted for the request)."""
    return f"{request_id}:reply:{reply}"


def is_reply_key(key: str) -> bool:
    return ":reply:" in key


def answered_by(text: str, asked: list[str], reporter: str) -> list[str]:
    """The asked fields that ``text`` answers, by the triage rules that found them missing
    (``triage.rules.missing_information``), reading the reply as a report's description."""
    if not asked:
        return []
    reply = BugReport(id="reply", title="reply", description=text, reporter=reporter)
    still_missing = set(missing_information(reply))
    return [field for field in asked if field not in still_missing]


class ReplyState(StrEnum):
    PENDING = "pending"  # the comment is being posted: on redelivery, look for it first
    POSTED = "posted"


class ReplyRecord(BaseModel):
    """The reply ledger's entry: the reply as written (kept in the service), and its
    comment once posted."""

    reply_id: str
    request_id: str
    text: str
    at: datetime
    by: str
    state: ReplyState = ReplyState.PENDING
    comment_url: str | None = None
    answered: list[str] = Field(default_factory=list)
