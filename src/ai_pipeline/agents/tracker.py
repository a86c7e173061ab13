"""The tracker agent (github-api-agent): files each draft exactly once.

The tracker has no idempotency key, so the ledger in the state store is written before
and after the create call. A ``pending`` entry found on redelivery means the outcome of an
earlier create is unknown: the tracker is searched for the request's marker first.

Issues opened on GitHub are not filed: they are acted on in place (``agents.in_place``).

Security-sensitive reports are filed on the private tracker when one is configured (the
built-in local tracker by default), never on the public one.

Duplicates: in the "link" mode (the default) every report becomes its own issue, which
names the likely original, so a wrong match never swallows a report. In the "comment"
mode a report triage matched to an open issue is added to it as a comment instead (its
environment, steps and the count of reports so far); the issue must still be open, or a
new issue is filed. Nothing is ever closed. Comments carry the same marker, so a
comment whose outcome is unknown is found again before anything is posted twice.
The count is read from the issue's comments, so reports of one issue are commented one
after another within a process; tracker agents in other processes may still race, which
can repeat a count but never loses or doubles a comment.
"""

from __future__ import annotations

from collections.abc import Awaitable, Sequence
from typing import Literal, TypeVar

from ai_pipeline.agents.in_place import InPlaceActor
from ai_pipeline.agents.keyed_locks import KeyedLocks
from ai_pipeline.agents.messages import step_ran
from ai_pipeline.domain.errors import PermanentError
from ai_pipeline.domain.events import Event, IssueDrafted, Step, TriageCommentDrafted, utcnow
from ai_pipeline.domain.models import FiledIssue
from ai_pipeline.domain.request_state import RequestStatus
from ai_pipeline.drafting.template import occurrence_comment
from ai_pipeline.observability.metrics import Metrics
from ai_pipeline.ports import FilingRecord, OutgoingMessage, StateStore, Tracker

T = TypeVar("T")


class TrackerAgent:
    def __init__(
        self,
        tracker: Tracker,
        store: StateStore,
        metrics: Metrics,
        private_tracker: Tracker | None = None,
        duplicates: Literal["link", "comment"] = "link",
        in_place: InPlaceActor | None = None,
    ):
        self.tracker = tracker
        self.in_place = in_place
        self.private_tracker = private_tracker
        self.store = store
        self.metrics = metrics
        self.duplicates = duplicates
        self._commenting = KeyedLocks()

    async def handle(self, event: Event) -> Sequence[OutgoingMessage]:
        if not isinstance(event, IssueDrafted | TriageCommentDrafted):
            raise PermanentError(f"tracker agent cannot handle {event.kind}")
        state = await self.store.get(event.request_id)
        if state is not None and state.status is RequestStatus.FAILED:
            return []  # ended already (timed out, say): filing now would surprise everyone
        if isinstance(event, TriageCommentDrafted):
            if self.in_place is None:
                raise PermanentError(
                    "an issue opened on GitHub, but the GitHub App mode is not set up here"
                    " (AI_PIPELINE_GITHUB_WEBHOOK_SECRET)"
                )
            return await self.in_place.act(event)
        return await self._file(event, state is None)

    async def _file(self, event: IssueDrafted, unsure: bool) -> Sequence[OutgoingMessage]:
        started = utcnow()
        private = event.security_sensitive and self.private_tracker is not None
        tracker = self.private_tracker if private and self.private_tracker else self.tracker
        # No state at all: the store was emptied (an emergency flush) and not yet rebuilt,
        # so its ledger cannot be trusted either: search before creating.
        issue = await self._file_once(tracker, event, private, unsure)
        data = {
            "issue_number": issue.number,
            "issue_url": issue.url,
            "tracker": tracker.name,
            "private": private,
            "filed_as": "comment" if issue.comment else "issue",
        }
        return step_ran(event.request_id, Step.GITHUB, started, utcnow(), data, issue=issue)

    async def _file_once(
        self, tracker: Tracker, event: IssueDrafted, private: bool, unsure: bool
    ) -> FiledIssue:
        request_id = event.request_id
        record = await self.store.get_filing(request_id)
        if record is not None and record.state == "filed" and record.issue is not None:
            return record.issue
        canonical = None if private else self._comment_target(event)
        issue = None
        if record is not None or unsure:
            issue = await self._call(tracker, "find_filed", tracker.find_filed(request_id))
            if issue is None and canonical is not None:
                found = tracker.find_comment(request_id, canonical)
                issue = await self._call(tracker, "find_comment", found)
        if issue is None:
            await self.store.put_filing(FilingRecord(request_id, "pending", None))
            issue = await self._comment(tracker, event, canonical)
        if issue is None:
            issue = await self._call(
                tracker, "create_issue", tracker.create_issue(request_id, event.draft)
            )
        await self.store.put_filing(FilingRecord(request_id, "filed", issue))
        return issue

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
