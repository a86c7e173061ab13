"""Receiving GitHub's webhooks: verify, decide, store, answer (the GitHub App mode).

Durable before answered: a delivery that asks for triage becomes a request through the
same path as a report sent to the API (``Submission``: the request and its first bus
messages are stored together, the transactional outbox), so the 202 goes out only once it
is safe. ``X-GitHub-Delivery`` deduplicates: the first pass over an issue is the request
``gh:<owner>:<name>:<number>`` (a second one cannot be created, on any API replica: the
store's insert is atomic), a later pass takes the version its delivery was given (stored
with the issue's record, atomically), and a delivery that only records something is
remembered once done. The payload is never logged.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from ai_pipeline.api.errors import ApiError
from ai_pipeline.bootstrap import Container
from ai_pipeline.domain.errors import UnavailableError
from ai_pipeline.domain.events import utcnow
from ai_pipeline.domain.github import (
    DELIVERY_KEY_PREFIX,
    FIRST_VERSION,
    IssueRecord,
    IssueRef,
    Origin,
    claim_version,
    merge_facts,
    merge_label_change,
    merge_reply,
)
from ai_pipeline.domain.models import BugReport
from ai_pipeline.domain.submissions import IdConflict
from ai_pipeline.intake.github import signature
from ai_pipeline.intake.github.corrections import correction_example
from ai_pipeline.intake.github.decisions import Acknowledge, Ignore, Record, Triage, decide
from ai_pipeline.intake.github.payloads import Delivery, InvalidPayload, parse
from ai_pipeline.intake.github.reports import report_for
from ai_pipeline.observability.logging import get_logger
from ai_pipeline.ports import GitHubStore
from ai_pipeline.submission import Submission

log = get_logger(__name__)
MAX_DELIVERY_ID = 100


@dataclass(frozen=True)
class Received:
    outcome: str  # triaged, recorded, acknowledged, duplicate, ignored_<reason>
    request_id: str | None = None

    def body(self, event: str, delivery_id: str) -> dict[str, str | None]:
        return {
            "delivery": delivery_id,
            "event": event,
            "outcome": self.outcome,
            "request_id": self.request_id,
        }


class GitHubWebhooks:
    def __init__(self, container: Container, store: GitHubStore, secret: bytes):
        self.c = container
        self.store = store
        self._secret = secret
        self._repositories = {r.lower() for r in container.settings.app_repositories}
        self._submission = Submission(container)

    def verify(self, body: bytes, header: str | None, delivery_id: str | None) -> None:
        """Raise 401 unless ``header`` is GitHub's signature of ``body``."""
        refused = signature.check(self._secret, body, header)
        if refused is None:
            return
        self.c.metrics.github_webhook_refusals.labels(refused).inc()
        log.warning("github_webhook_refused", reason=refused, delivery=delivery_id)
        raise ApiError(
            401,
            "the X-Hub-Signature-256 signature is missing or wrong"
            if refused != "unsupported"
            else "only X-Hub-Signature-256 (sha256=…) signatures are accepted",
            details={"reason": refused},
        )

    async def receive(self, event: str, delivery_id: str, body: bytes) -> Received:
        if not 0 < len(delivery_id) <= MAX_DELIVERY_ID or not delivery_id.isprintable():
            raise ApiError(400, "X-GitHub-Delivery must be 1 to 100 printable characters")
        try:
            delivery = parse(event, body)
        except InvalidPayload as error:
            self.c.metrics.github_webhook_refusals.labels("invalid_payload").inc()
            raise ApiError(400, f"not a {event} payload GitHub sends: {error}") from None
        try:
            async with asyncio.timeout(self.c.settings.submit_timeout_seconds):
                received = await self._receive(delivery, delivery_id)
        except TimeoutError:
            raise UnavailableError("storing the delivery timed out") from None
        self.c.metrics.github_webhooks.labels(event, received.outcome).inc()
        log.info(
            "github_webhook",
            github_event=event,
            action=delivery.action,
            delivery=delivery_id,
            outcome=received.outcome,
            request_id=received.request_id,
        )
        return received

    async def _receive(self, delivery: Delivery, delivery_id: str) -> Received:
        if await self.store.seen_delivery(delivery_id):
            return Received("duplicate")
        issue = _issue_of(delivery)
        known = await self.store.get_issue(issue) if issue is not None else None
        decision = decide(delivery, self._repositories, known)
        if isinstance(decision, Triage):
            # The request itself records the delivery: its id and idempotency key are
            # claimed atomically, so a redelivery finds it, and a crash in between leaves
            # nothing half done.
            return await self._triage(decision, delivery, delivery_id)
        received = await self._act(decision, delivery)
        await self.store.mark_delivery(delivery_id, delivery.event)
        return received

    async def _act(self, decision: Ignore | Acknowledge | Record, delivery: Delivery) -> Received:
        if isinstance(decision, Ignore):
            return Received(f"ignored_{decision.reason}")
        if isinstance(decision, Acknowledge):
            return Received("acknowledged")
        await self._record(decision, delivery)
        return Received("recorded")

    async def _record(self, decision: Record, delivery: Delivery) -> None:
        def change(record: IssueRecord) -> IssueRecord:
            record = merge_facts(record, decision.facts)
            if decision.label is None:
                return record
            added = decision.what == "labeled"
            return merge_label_change(record, decision.label, added, decision.by_human)

        await self.store.update_issue(decision.issue, change)
        if decision.label is not None and decision.by_human and delivery.issue is not None:
            # Kept as the review queue keeps a maintainer's correction: one example per
            # issue, the latest labels replacing the earlier ones.
            origin = Origin(decision.issue, FIRST_VERSION)
            example = correction_example(origin, delivery.issue, utcnow())
            await self.c.store.put_review_example(origin.first_pass_id, example)

    async def _triage(self, decision: Triage, delivery: Delivery, delivery_id: str) -> Received:
        assert delivery.issue is not None and delivery.repository is not None  # by decide

        def change(record: IssueRecord) -> IssueRecord:
            record = claim_version(merge_facts(record, decision.facts), delivery_id, decision.first)
            if decision.reply is not None:
                record = merge_reply(record, *decision.reply)
            return record

        key = f"{DELIVERY_KEY_PREFIX}{delivery_id}"
        if decision.first:
            # The first pass's id is known without the record: both writes go at once (one
            # group commit in the embedded deployment).
            report = report_for(
                Origin(decision.issue, FIRST_VERSION),
                delivery.issue,
                delivery.repository,
                {},
                decision.trigger,
                delivery_id,
            )
            _, (created, request_id) = await asyncio.gather(
                self.store.update_issue(decision.issue, change),
                self._submit(report, key),
            )
        else:
            record = await self.store.update_issue(decision.issue, change)
            report = report_for(
                Origin(decision.issue, record.deliveries[delivery_id]),
                delivery.issue,
                delivery.repository,
                record.replies,
                decision.trigger,
                delivery_id,
            )
            created, request_id = await self._submit(report, key)
        return Received("triaged" if created else "duplicate", request_id)

    async def _submit(self, report: BugReport, key: str) -> tuple[bool, str]:
        """(created, request id) of the pass. Another delivery of the same pass made its
        request already when the body differs only in what that delivery carried (GitHub
        sends one issue's ``opened`` twice at times, each with an id of its own): that one."""
        try:
            outcome = await self._submission.submit(report, key)
        except IdConflict as known:
            return False, known.request_id
        return outcome.created, outcome.state.request_id


def _issue_of(delivery: Delivery) -> IssueRef | None:
    if delivery.issue is None or delivery.repository is None:
        return None
    return IssueRef(delivery.repository.full_name, delivery.issue.number)
