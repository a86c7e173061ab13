"""The tracker agent (github-api-agent): files each draft exactly once.

The tracker has no idempotency key, so the ledger in the state store is written before
and after the create call. A ``pending`` entry found on redelivery means the outcome of an
earlier create is unknown: the tracker is searched for the request's marker first, among
this account's issues since that attempt. GitHub lists a new issue only after a lag, so an
attempt not yet listed is looked for again, with backoff, until the tracker's listing lag
has passed since it; only then is the issue created again. The agent never sleeps on it:
it hands the message back (``UnavailableError`` with the wait), and the runner brings it
again later.

The pending entry carries a lease (an owner and an expiry, claimed atomically in the store):
two tracker processes never create for one request at once, as when a consumer loses its
partition mid-call and the new owner gets the same draft. The other one waits for the
lease, and finds the issue filed or the attempt to reconcile. A create call is cut short
before its lease ends, by the listing lag, so whoever claims next already sees its issue.

Security-sensitive reports are filed on the private tracker when one is configured (the
built-in local tracker by default), never on the public one.

Duplicates: in the "link" mode (the default) every report becomes its own issue, which
names the likely original, so a wrong match never swallows a report. In the "comment"
mode a report triage matched to an open issue is added to it as a comment instead (its
environment, steps and the count of reports so far); the issue must still be open, or a
new issue is filed. Nothing is ever closed. Comments carry the same marker and are
reconciled the same way (every page of this account's comments since the attempt), so a
comment whose outcome is unknown is found again before anything is posted twice.
The count is read from the issue's comments, so reports of one issue are commented one
after another within a process; tracker agents in other processes may still race, which
can repeat a count but never loses or doubles a comment.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Literal, TypeVar

from ai_pipeline.agents.keyed_locks import KeyedLocks
from ai_pipeline.agents.messages import step_ran
from ai_pipeline.domain.errors import PermanentError, UnavailableError
from ai_pipeline.domain.events import Event, IssueDrafted, Step, utcnow
from ai_pipeline.domain.models import FiledIssue
from ai_pipeline.domain.request_state import RequestState, RequestStatus
from ai_pipeline.drafting.template import occurrence_comment
from ai_pipeline.observability.metrics import Metrics
from ai_pipeline.ports import FilingClaim, FilingRecord, OutgoingMessage, StateStore, Tracker

T = TypeVar("T")
# Searches start this long before the attempt (or the draft): clocks of hosts and GitHub's
# differ a little, and a wider window costs only a few more of our own issues listed.
SEARCH_MARGIN = timedelta(minutes=5)
# Another process's lease is asked about again this often: it usually ends in seconds,
# when that process writes the issue to the ledger.
LEASE_POLL_SECONDS = 5.0


class TrackerAgent:
    def __init__(
        self,
        tracker: Tracker,
        store: StateStore,
        metrics: Metrics,
        private_tracker: Tracker | None = None,
        duplicates: Literal["link", "comment"] = "link",
        *,
        owner: str | None = None,
        lease_seconds: float = 120.0,
    ):
        """``owner``: this process, as named in the leases it holds (a fresh name by
        default); ``lease_seconds``: how long one create may hold a request's entry."""
        self.tracker = tracker
        self.private_tracker = private_tracker
        self.store = store
        self.metrics = metrics
        self.duplicates = duplicates
        self.owner = owner or f"tracker-{uuid.uuid4().hex[:12]}"
        self.lease_seconds = lease_seconds
        self._commenting = KeyedLocks()

    async def handle(self, event: Event) -> Sequence[OutgoingMessage]:
        if not isinstance(event, IssueDrafted):
            raise PermanentError(f"tracker agent cannot handle {event.kind}")
        state = await self.store.get(event.request_id)
        if state is not None and state.status is RequestStatus.FAILED:
            return []  # ended already (a refusal, say): `ai-pipeline redrive` reopens it
        started = utcnow()
        private = event.security_sensitive and self.private_tracker is not None
        tracker = self.private_tracker if private and self.private_tracker else self.tracker
        issue = await self._file_once(tracker, event, private, state)
        data = {
            "issue_number": issue.number,
            "issue_url": issue.url,
            "tracker": tracker.name,
            "private": private,
            "filed_as": "comment" if issue.comment else "issue",
        }
        return step_ran(event.request_id, Step.GITHUB, started, utcnow(), data, issue=issue)

    async def _file_once(
        self, tracker: Tracker, event: IssueDrafted, private: bool, state: RequestState | None
    ) -> FiledIssue:
        request_id = event.request_id
        record = await self.store.get_filing(request_id)
        if record is not None and record.state == "filed" and record.issue is not None:
            return record.issue
        # No state at all: the store was emptied (an emergency flush) and not yet rebuilt,
        # so its ledger cannot be trusted either: search before creating.
        unsure = state is None
        fresh = (record is None or record.state == "refused") and not unsure
        claim = await self._claim(tracker, request_id, attempt=fresh)
        if isinstance(claim, FiledIssue):
            return claim
        canonical = None if private else self._comment_target(event)
        previous = claim.previous
        if unsure or (previous is not None and previous.state == "pending"):
            since = _search_from(previous, state)
            found = await self._reconcile(tracker, request_id, canonical, since)
            if found is not None:
                await self.store.put_filing(FilingRecord(request_id, "filed", found))
                return found
            self._wait_out_listing_lag(tracker, request_id, claim)
            again = await self._claim(tracker, request_id, attempt=True)
            if isinstance(again, FiledIssue):
                return again
        try:
            # Over before the lease is: whoever claims next then sees what this created.
            async with asyncio.timeout(max(self.lease_seconds - tracker.listing_lag_seconds, 1)):
                issue = await self._create(tracker, event, canonical)
        except PermanentError:
            # Refused: nothing was filed, so a redrive has nothing to look for or wait out.
            await self.store.put_filing(FilingRecord(request_id, "refused", None))
            raise
        except TimeoutError:
            raise UnavailableError(
                f"filing request {request_id} outlasted its lease; the outcome is unknown",
                dependency="tracker",
            ) from None
        await self.store.put_filing(FilingRecord(request_id, "filed", issue))
        return issue

    async def _claim(
        self, tracker: Tracker, request_id: str, attempt: bool
    ) -> FilingClaim | FiledIssue:
        """The lease on the request's entry, or the issue another process filed meanwhile;
        while another process holds the lease, a wait is raised (the message comes back)."""
        claim = await self.store.claim_filing(request_id, self.owner, self.lease_seconds, attempt)
        if claim.granted:
            return claim
        previous = claim.previous
        if previous is not None and previous.state == "filed" and previous.issue is not None:
            return previous.issue
        holder = previous.owner if previous is not None else "?"
        self.metrics.tracker_retries.labels(tracker.name, "lease").inc()
        raise UnavailableError(
            f"request {request_id} is being filed by another tracker process ({holder});"
            " waiting for its lease",
            retry_after=min(max(claim.wait_seconds, 0.5), LEASE_POLL_SECONDS),
            dependency="tracker",
        )

    async def _reconcile(
        self, tracker: Tracker, request_id: str, canonical: int | None, since: datetime | None
    ) -> FiledIssue | None:
        """What an earlier attempt may have filed: an issue, or a comment on the original."""
        issue = await self._call(tracker, "find_filed", tracker.find_filed(request_id, since))
        if issue is None and canonical is not None:
            found = tracker.find_comment(request_id, canonical, since)
            issue = await self._call(tracker, "find_comment", found)
        return issue

    async def _create(
        self, tracker: Tracker, event: IssueDrafted, canonical: int | None
    ) -> FiledIssue:
        issue = await self._comment(tracker, event, canonical)
        if issue is None:
            created = tracker.create_issue(event.request_id, event.draft)
            issue = await self._call(tracker, "create_issue", created)
        return issue

    def _wait_out_listing_lag(self, tracker: Tracker, request_id: str, claim: FilingClaim) -> None:
        """Not found: if the tracker's listing lag has not passed since the earlier attempt,
        the issue may exist unlisted; hand the message back to look again later, backing
        off (1 s, 2 s, 4 s…) until the lag has passed."""
        previous = claim.previous
        began = None
        if previous is not None:
            began = previous.attempted_at or previous.pending_since
        elapsed = claim.now - (began or claim.now)
        left = tracker.listing_lag_seconds - elapsed
        if left <= 0:
            return
        self.metrics.tracker_retries.labels(tracker.name, "listing_lag").inc()
        raise UnavailableError(
            f"request {request_id}: an earlier attempt's outcome is unknown and the tracker"
            f" does not list it yet; looking again before creating ({left:.0f} s left)",
            retry_after=min(max(elapsed, 1.0), left),
            dependency="tracker",
        )

    def _comment_target(self, event: IssueDrafted) -> int | None:
        if self.duplicates != "comment" or event.occurrence is None:
            return None
        return event.duplicate_of_issue

    async def _comment(
        self, tracker: Tracker, event: IssueDrafted, canonical: int | None
    ) -> FiledIssue | None:
        """The report as a comment on its open original, or None to file a new issue."""
        if canonical is None or event.occurrence is None:
            return None
        async with self._commenting.hold((tracker.name, canonical)):
            original = await self._call(tracker, "open_issue", tracker.open_issue(canonical))
            if original is None:
                return None  # closed or gone: a new issue, which still links it
            body = occurrence_comment(event.occurrence, original.occurrences + 2)
            comment = tracker.add_comment(event.request_id, canonical, body)
            filed = await self._call(tracker, "add_comment", comment)
        return filed.model_copy(update={"title": original.title})

    async def _call(self, tracker: Tracker, operation: str, call: Awaitable[T]) -> T:
        try:
            result = await call
        except Exception:
            self.metrics.tracker_calls.labels(tracker.name, operation, "error").inc()
            raise
        self.metrics.tracker_calls.labels(tracker.name, operation, "ok").inc()
        return result


def _search_from(previous: FilingRecord | None, state: RequestState | None) -> datetime | None:
    """Where a search for an earlier attempt's issue may start: a margin before the
    attempt, or before the draft (nothing was filed before it existed); None if neither
    is known."""
    if previous is not None and previous.attempted_at is not None:
        return datetime.fromtimestamp(previous.attempted_at, UTC) - SEARCH_MARGIN
    drafted = state.progress.get(Step.TICKET_CREATION) if state is not None else None
    return drafted.timestamp - SEARCH_MARGIN if drafted is not None else None
