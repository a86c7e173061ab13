"""Ports of the loop with the reporter: where conversations, deliveries and replies are kept,
how notifications leave the service, and what the follow-up rules read from a tracker."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from email.message import EmailMessage
from typing import Any, Protocol

from ai_pipeline.domain.conversation import Conversation
from ai_pipeline.domain.follow_up import IssueView
from ai_pipeline.domain.notifications import Delivery
from ai_pipeline.domain.replies import ReplyRecord
from ai_pipeline.domain.resolution import CloseReason, Resolution


class LoopStore(Protocol):
    """Kept beside the state store (SQLite or Redis) but for longer: a conversation lives
    as long as its issue may still change, not a day after the request ended."""

    async def start(self) -> None: ...

    async def close(self) -> None: ...

    async def signing_key(self) -> bytes:
        """The service's link-signing key: made at random once, then always the same."""
        ...

    async def get_conversation(self, request_id: str) -> Conversation | None: ...

    async def put_conversation(self, conversation: Conversation) -> None:
        """Insert or replace (one writer per request: the notifier agent's partition)."""
        ...

    async def following(self, tracker: str, issue_number: int) -> list[str]:
        """Request ids whose conversation follows that issue (filed as it, or as a
        comment on it)."""
        ...

    async def needing_info(self, limit: int, after: str = "") -> list[Conversation]:
        """Conversations with questions still open on an issue not resolved, by request
        id, those after ``after`` (paging for the follow-up rules)."""
        ...

    async def resolved_since(self, since: datetime) -> list[Conversation]:
        """Conversations whose issue was resolved at or after ``since``."""
        ...

    async def count_unresolved(self) -> int:
        """Filed issues (as issues, not comments) not resolved: open or reopened."""
        ...

    async def get_delivery(self, delivery_id: str) -> Delivery | None: ...

    async def put_delivery(self, delivery: Delivery) -> None: ...

    async def claim_due(self, now: datetime, lease_until: datetime, limit: int) -> list[Delivery]:
        """Pending deliveries due at ``now``, each pushed to ``lease_until`` atomically, so
        another process's sweep does not take it while this one tries it."""
        ...

    async def get_reply(self, reply_id: str) -> ReplyRecord | None: ...

    async def put_reply(self, reply: ReplyRecord) -> None: ...

    async def replies_of(self, request_id: str) -> list[ReplyRecord]:
        """A request's replies, oldest first."""
        ...

    async def opt_out(self, address_key: str, at: datetime) -> None:
        """Never email this reporter again (``domain.links.address_key`` of the address)."""
        ...

    async def opted_out(self, address_key: str) -> bool: ...

    async def ping(self) -> dict[str, Any]: ...


@dataclass(frozen=True)
class IssueChange:
    """An issue after a close or reopen: how it stands (None: a reopen of an issue never
    closed), the requests following it, and whether this call changed anything."""

    resolution: Resolution | None
    followers: list[str]
    changed: bool


@dataclass(frozen=True)
class SendResult:
    ok: bool
    permanent: bool = False  # the receiver refused it: retrying cannot help
    detail: str = ""


class WebhookSender(Protocol):
    async def post(self, url: str, body: bytes, headers: Mapping[str, str]) -> SendResult: ...

    async def close(self) -> None: ...


class Mailer(Protocol):
    async def send(self, message: EmailMessage) -> SendResult: ...


class ConversationTracker(Protocol):
    """What the follow-up rules and replies need of a tracker beyond filing; the local
    tracker has it now, GitHub's comes with its webhook receiver."""

    name: str

    async def issue_view(self, number: int) -> IssueView | None: ...

    async def close_issue(
        self, number: int, reason: CloseReason, actor: str, duplicate_of: int | None = None
    ) -> IssueChange:
        """Close it; one already closed is left as it was (and ``changed`` is false)."""
        ...

    async def questions_answered(self, number: int, answered: Sequence[str]) -> None:
        """Drop ``needs-info`` and mark the body's questions answered."""
        ...
