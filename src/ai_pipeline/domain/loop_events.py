"""Events of a filed issue's life after filing ("closing the loop" with the reporter).

The first three go on ``status-updates`` beside ``StepChanged``: the log stays the record
of truth, and the request state and each conversation are folded from it (and rebuilt from
it). A reply travels on ``replies`` to the agent that posts it on the tracker.
"""

from __future__ import annotations

from datetime import UTC, datetime
from functools import partial
from typing import Literal

from pydantic import BaseModel, Field

from ai_pipeline.domain.resolution import Resolution

MAX_REPLY = 10_000
# ``events.utcnow``, which this module cannot import: events imports it.
_now = partial(datetime.now, UTC)


class IssueResolutionChanged(BaseModel):
    """The issue a request was filed as (or commented on) was closed or reopened.

    Written by ``resolution.record_resolution`` whatever saw it: the local tracker's
    close and reopen, the follow-up rules, GitHub's webhooks or the poll of filed issues.
    """

    kind: Literal["issue_resolution_changed"] = "issue_resolution_changed"
    request_id: str
    tracker: str
    issue_number: int
    resolution: Resolution
    source: str  # who saw it: local, follow_up, github_webhook, github_poll


class ReporterReplied(BaseModel):
    """A reply of the reporter was posted on the issue (once; ``reply_id`` names it)."""

    kind: Literal["reporter_replied"] = "reporter_replied"
    request_id: str
    reply_id: str
    at: datetime = Field(default_factory=_now)
    # Missing-information fields this reply answered (triage.rules field names).
    answered: list[str] = Field(default_factory=list)
    comment_url: str | None = None


class NeedsInfoReminded(BaseModel):
    """The reporter was reminded, once, of the questions still open."""

    kind: Literal["needs_info_reminded"] = "needs_info_reminded"
    request_id: str
    at: datetime = Field(default_factory=_now)


class ReplyReceived(BaseModel):
    """A reply accepted by the API, to be posted on the issue (``replies`` topic)."""

    kind: Literal["reply_received"] = "reply_received"
    request_id: str
    reply_id: str
    text: str = Field(min_length=1, max_length=MAX_REPLY)  # as written: redacted when posted
    at: datetime = Field(default_factory=_now)
    by: str  # "reporter" (reply token) or the API key id that sent it
