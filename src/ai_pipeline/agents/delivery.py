"""The delivery agent: sends each notification at least once, then never again.

A ``notifications`` message is written to the delivery ledger (pending, claimed for a
lease) before the first try; the message is committed only after that, so a process
killed mid-send redelivers the message or, once it is committed, leaves a pending entry
whose lease runs out and which the next sweep tries again. Nothing is lost.

A failed try is retried with backoff (doubling from ``first_retry`` up to ``max_retry``,
jittered) for ``give_up_after`` (24 h) from the first try; then, or at once when the
receiver refuses for good (a 4xx, a refused recipient), the notification goes to
``notifications.dlq`` as it was: ``ai-pipeline redrive --dead-letters notifications.dlq``
replays it to ``notifications``, and this agent sends it again (a dead entry starts over).

Webhooks carry ``X-AI-Pipeline-Delivery`` (the delivery id, the same on every try),
``X-AI-Pipeline-Event`` and ``X-AI-Pipeline-Signature-256: sha256=<HMAC-SHA256 of the
body>`` under ``AI_PIPELINE_NOTIFY_WEBHOOK_SECRET``; a receiver acts once per delivery id.
Emails to a reporter who unsubscribed are not sent (``suppressed``).
"""

from __future__ import annotations

import hashlib
import hmac
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

import orjson

from ai_pipeline import __version__
from ai_pipeline.agents.messages import dead_letter
from ai_pipeline.domain.errors import PermanentError
from ai_pipeline.domain.events import Event, Topic, encode, utcnow
from ai_pipeline.domain.links import Links, address_key
from ai_pipeline.domain.notifications import (
    Channel,
    Delivery,
    DeliveryState,
    Notification,
    webhook_body,
)
from ai_pipeline.drafting.notification_email import render_email
from ai_pipeline.loop_ports import LoopStore, Mailer, SendResult, WebhookSender
from ai_pipeline.observability.logging import get_logger
from ai_pipeline.observability.metrics import Metrics
from ai_pipeline.ports import Bus, OutgoingMessage

log = get_logger(__name__)
AGENT = "delivery_agent"


@dataclass(frozen=True)
class RetryPlan:
    first_retry: timedelta = timedelta(seconds=30)
    max_retry: timedelta = timedelta(hours=1)
    give_up_after: timedelta = timedelta(hours=24)
    # A claimed delivery is another process's to try for this long (a try takes at most
    # the send timeout); past it, a sweep takes it over (its process died mid-send).
    lease: timedelta = timedelta(seconds=60)

    def next_try(self, attempts: int, now: datetime, first: datetime) -> datetime:
        wait = min(self.max_retry, self.first_retry * 2 ** max(0, attempts - 1))
        jittered: timedelta = wait * random.uniform(0.8, 1.0)  # spreads many retries
        return min(now + jittered, first + self.give_up_after)


@dataclass(frozen=True)
class Senders:
    webhooks: WebhookSender | None = None
    webhook_secret: bytes | None = None
    mailer: Mailer | None = None
    mail_from: str = ""


class DeliveryAgent:
    def __init__(
        self,
        loop: LoopStore,
        bus: Bus,
        senders: Senders,
        links: Links,
        metrics: Metrics,
        plan: RetryPlan | None = None,
        clock: Callable[[], datetime] = utcnow,
    ):
        self.loop = loop
        self.bus = bus
        self.senders = senders
        self.links = links
        self.metrics = metrics
        self.plan = plan or RetryPlan()
        self.clock = clock

    async def handle(self, event: Event) -> Sequence[OutgoingMessage]:
        if not isinstance(event, Notification):
            raise PermanentError(f"delivery agent cannot handle {event.kind}")
        now = self.clock()
        known = await self.loop.get_delivery(event.delivery_id)
        if known is not None and known.state in (DeliveryState.DELIVERED, DeliveryState.SUPPRESSED):
            return []  # sent before: a redelivered or replanned notification
        due = known.next_attempt_at if known is not None else None
        if known is not None and known.state is DeliveryState.PENDING and due and due > now:
            return []  # a retry is scheduled, or another process is trying it now
        claimed = Delivery(
            notification=event,
            # A dead entry replayed from the dead-letter topic starts over.
            attempts=known.attempts if known and known.state is DeliveryState.PENDING else 0,
            first_attempt_at=(
                known.first_attempt_at if known and known.state is DeliveryState.PENDING else None
            ),
            next_attempt_at=now + self.plan.lease,
            updated_at=now,
        )
        await self.loop.put_delivery(claimed)
        return await self.attempt(claimed)

    async def restore(self, notification: Notification, published_at: float) -> bool:
        """After the ledger was lost (a flushed store): a notification published within
        the retry window and not known here is due again. Some were sent before the
        flush; their receivers see the same delivery id again (at least once)."""
        now = self.clock()
        if now.timestamp() - published_at > self.plan.give_up_after.total_seconds():
            return False  # delivered or dead-lettered long ago
        if await self.loop.get_delivery(notification.delivery_id) is not None:
            return False
        due = Delivery(notification=notification, next_attempt_at=now, updated_at=now)
        await self.loop.put_delivery(due)
        return True

    async def sweep(self, limit: int = 100) -> int:
        """Try the deliveries that are due (retries, and tries whose process died); how
        many were tried. Their dead letters are published here."""
        now = self.clock()
        claimed = await self.loop.claim_due(now, now + self.plan.lease, limit)
        outputs = [message for d in claimed for message in await self.attempt(d)]
        if outputs:
            await self.bus.publish(outputs)
        return len(claimed)

    async def attempt(self, delivery: Delivery) -> list[OutgoingMessage]:
        n = delivery.notification
        started = self.clock()
        first = delivery.first_attempt_at or started
        result = await self._send(n)
        now = self.clock()
        attempts = delivery.attempts + (0 if result is None else 1)
        tried = delivery.model_copy(
            update={"attempts": attempts, "first_attempt_at": first, "updated_at": now}
        )
        if result is None or result.ok:
            state = DeliveryState.SUPPRESSED if result is None else DeliveryState.DELIVERED
            await self._put(tried, state, None, None, "delivered" if result else "suppressed")
            return []
        if result.permanent or now - first >= self.plan.give_up_after:
            reason = f"gave up after {attempts} attempts: {result.detail}"
            await self._put(tried, DeliveryState.DEAD, None, result.detail, "dead")
            log.error("notification_dead_lettered", delivery_id=n.delivery_id, reason=reason)
            value = encode(n)
            return [
                dead_letter(
                    Topic.NOTIFICATIONS.value,
                    n.request_id,
                    value,
                    reason=reason,
                    agent=AGENT,
                    attempts=attempts,
                )
            ]
        retry_at = self.plan.next_try(attempts, now, first)
        await self._put(tried, DeliveryState.PENDING, retry_at, result.detail, "retry")
        return []

    async def _put(
        self,
        delivery: Delivery,
        state: DeliveryState,
        next_at: datetime | None,
        error: str | None,
        outcome: str,
    ) -> None:
        n = delivery.notification
        await self.loop.put_delivery(
            delivery.model_copy(
                update={"state": state, "next_attempt_at": next_at, "last_error": error}
            )
        )
        self.metrics.loop.notifications.labels(n.channel.value, n.event.value, outcome).inc()

    async def _send(self, n: Notification) -> SendResult | None:
        """Send once; None when it must not be sent (the reporter unsubscribed)."""
        if n.channel is Channel.WEBHOOK:
            return await self._post(n)
        return await self._mail(n)

    async def _post(self, n: Notification) -> SendResult:
        s = self.senders
        if s.webhooks is None or s.webhook_secret is None:
            return _not_configured("webhooks need AI_PIPELINE_NOTIFY_WEBHOOK_SECRET")
        token = url = None
        if n.questions and not n.private:
            token = await self.links.reply_token(n.request_id)
            url = await self.links.reply_url(n.request_id)
        body = orjson.dumps(webhook_body(n, token, url))
        headers = {
            "Content-Type": "application/json",
            "User-Agent": f"AI-Pipeline/{__version__}",
            "X-AI-Pipeline-Event": n.event.value,
            "X-AI-Pipeline-Delivery": n.delivery_id,
            "X-AI-Pipeline-Signature-256": signature(s.webhook_secret, body),
        }
        return await s.webhooks.post(n.target, body, headers)

    async def _mail(self, n: Notification) -> SendResult | None:
        s = self.senders
        if s.mailer is None:
            return _not_configured("email needs AI_PIPELINE_SMTP_URL and AI_PIPELINE_SMTP_FROM")
        if await self.loop.opted_out(address_key(n.target)):
            return None
        reply = await self.links.reply_url(n.request_id) if n.questions else None
        message = render_email(
            n,
            sender=s.mail_from,
            reply_url=reply,
            unsubscribe_url=await self.links.unsubscribe_url(n.target),
        )
        return await s.mailer.send(message)


def signature(secret: bytes, body: bytes) -> str:
    """``X-AI-Pipeline-Signature-256``, as GitHub signs its webhooks."""
    return "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()


def _not_configured(what: str) -> SendResult:
    # Retried, not refused: the operator may configure it within the retry window, and
    # after it the notification waits in the dead-letter topic to be redriven.
    return SendResult(ok=False, detail=f"not configured: {what}")
