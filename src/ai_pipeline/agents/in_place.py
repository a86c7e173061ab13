"""Acting on an issue opened on GitHub, in place and exactly once (GitHub App mode).

The tracker agent hands each ``TriageCommentDrafted`` here. One pass over an issue:

1. **Ledger and lease** (one atomic step of the store): the entry of (repository, issue,
   triage version) is read: a pass already done answers with what it did. Otherwise a
   short lease on the issue is taken (a lock per issue within the process too), so two
   passes never post at once, and the entry is written ``pending``. Everything below is
   safe to run again after a crash or an unknown outcome; the end of the pass writes the
   entry ``done``, the issue's record and releases the lease in one step.
2. **Read the issue now.** Closed, locked, gone, or already acted on by a later pass:
   nothing is done. Labels are decided against the issue's labels of this moment: humans
   win (``domain.github_labels``).
3. **One comment.** Our comment's id is in the issue's record; without it, the issue's
   comments are listed for our marker before anything is posted (a create whose answer was
   lost is found, not repeated). An existing comment is edited in place, never a second
   one posted; a comment someone deleted is not posted again; nothing useful to say and
   no comment yet: nothing is posted.
4. **Labels and assignee** (``apply`` mode): ours are recorded before they are added, so a
   crash never makes them look like a person's. Only ours are ever removed.
"""

from __future__ import annotations

import hashlib
import os
import socket
import uuid
from collections.abc import Callable, Mapping, Sequence
from contextlib import suppress
from dataclasses import dataclass
from typing import Any, Literal

from ai_pipeline.agents.keyed_locks import KeyedLocks
from ai_pipeline.agents.messages import step_ran
from ai_pipeline.domain.errors import PermanentError, UnavailableError
from ai_pipeline.domain.events import Step, TriageCommentDrafted, utcnow
from ai_pipeline.domain.github import (
    ActedOn,
    ActionRecord,
    InPlaceDraft,
    IssueRecord,
    IssueRef,
    acted_on_data,
    new_record,
)
from ai_pipeline.domain.github_labels import LabelDecision, decide_labels
from ai_pipeline.domain.models import FiledIssue
from ai_pipeline.drafting.github_comment import is_ours, is_quiet, render_comment
from ai_pipeline.observability.metrics import Metrics
from ai_pipeline.ports import GitHubStore, OutgoingMessage, Tracker, TrackerComment, TrackerIssue

Mode = Literal["suggest", "apply"]
RecordChange = Callable[[IssueRecord], IssueRecord]


class InPlaceActor:
    def __init__(
        self,
        trackers: Mapping[str, Tracker],
        store: GitHubStore,
        metrics: Metrics,
        mode: Mode = "suggest",
        lease_seconds: float = 150.0,
    ):
        """``trackers``: one per repository acted on, keyed by lower-cased owner/name."""
        self.trackers = {name.lower(): tracker for name, tracker in trackers.items()}
        self.store = store
        self.metrics = metrics
        self.mode = mode
        self.lease_seconds = lease_seconds
        self.holder = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._locks = KeyedLocks()

    async def act(self, event: TriageCommentDrafted) -> Sequence[OutgoingMessage]:
        draft = event.draft
        issue = IssueRef(draft.repository, draft.issue_number)
        tracker = self.trackers.get(issue.repository.lower())
        if tracker is None:
            raise PermanentError(
                f"{issue.repository} is not one of the repositories acted on"
                " (AI_PIPELINE_GITHUB_REPOSITORIES)"
            )
        started = utcnow()
        async with self._locks.hold(issue):
            acted = await self._once(event, tracker, issue)
        filed = FiledIssue(
            number=issue.number, url=acted.issue_url or "", created=False, comment=False
        )
        return step_ran(
            event.request_id,
            Step.GITHUB,
            started,
            utcnow(),
            {"tracker": tracker.name, **acted_on_data(acted)},
            issue=filed if acted.issue_url else None,
        )

    async def _once(
        self, event: TriageCommentDrafted, tracker: Tracker, issue: IssueRef
    ) -> ActedOn:
        version = event.draft.version
        action = ActionRecord(
            repository=issue.repository,
            number=issue.number,
            version=version,
            request_id=event.request_id,
            state="pending",
        )
        begun, done, record = await self.store.begin_pass(action, self.holder, self.lease_seconds)
        if begun == "acted" and done is not None and done.acted_on is not None:
            return done.acted_on
        if begun == "busy":
            raise UnavailableError(f"issue {issue} is being acted on by another process", 1.0)
        try:
            acted, change = await self._pass(event.draft, tracker, issue, record)
        except Exception:
            # Let the redelivery (here or elsewhere) in at once; left held, the lease expires.
            with suppress(Exception):
                await self.store.release(issue, self.holder)
            raise
        done = action.model_copy(update={"state": "done", "acted_on": acted})
        await self.store.end_pass(done, change, self.holder)
        return acted

    async def _pass(
        self, draft: InPlaceDraft, tracker: Tracker, issue: IssueRef, record: IssueRecord | None
    ) -> tuple[ActedOn, RecordChange]:
        """What this pass did, and how the issue's record changes with it."""
        base = ActedOn(
            repository=issue.repository,
            issue_number=issue.number,
            mode=self.mode,
            version=draft.version,
        )
        live = await tracker.read_issue(issue.number)
        if live is None:
            return self._skipped(base, "gone", draft.version)
        base = base.model_copy(update={"issue_url": live.url})
        if record is not None and record.acted_version > draft.version:
            return self._skipped(base, "superseded", draft.version)
        if live.state == "closed" or live.locked:
            reason = "closed" if live.state == "closed" else "locked"
            return self._skipped(base, reason, draft.version)
        known = record or new_record(issue)
        decision = decide_labels(
            draft.labels, live.labels, known.ours, known.human_removed, self.mode
        )
        if decision.add:
            # Ours before they are added: a crash after adding must not make them a person's.
            known = await self.store.update_issue(
                issue, lambda r: r.model_copy(update={"ours": _union(r.ours, decision.add)})
            )
        body = render_comment(draft, decision, self.mode)
        posted = await self._comment(tracker, issue, known, draft, decision, body)
        applied = await self._labels(tracker, issue, decision)
        assignee = await self._assign(tracker, live, draft)
        removed = [label for label in decision.remove if label not in applied]

        def change(r: IssueRecord) -> IssueRecord:
            update: dict[str, Any] = {
                "acted_version": max(r.acted_version, draft.version),
                "waiting": draft.waiting,
                "ours": [x for x in r.ours if x.lower() not in _lower(removed)],
            }
            if posted.comment is not None:
                update.update(
                    comment_id=posted.comment.id,
                    comment_url=posted.comment.url,
                    comment_digest=posted.digest,
                )
            if posted.skipped == "comment_deleted":
                update["comment_deleted"] = True
            return r.model_copy(update=update)

        acted = base.model_copy(
            update={
                "comment_url": posted.comment.url if posted.comment else None,
                "labels_applied": applied,
                "labels_suggested": decision.suggest,
                "labels_removed": removed,
                "assignee": assignee,
                "skipped": posted.skipped,
            }
        )
        return acted, change

    async def _comment(
        self,
        tracker: Tracker,
        issue: IssueRef,
        record: IssueRecord,
        draft: InPlaceDraft,
        decision: LabelDecision,
        body: str,
    ) -> Posted:
        """Post or edit our one comment, or say why there is none."""
        if record.comment_deleted:
            return Posted(skipped=self._count_skip("comment_deleted"))
        digest = _digest(body)
        ours: TrackerComment | None
        if record.comment_id is not None and record.comment_url is not None:
            ours = TrackerComment(record.comment_id, record.comment_url, "", None, None, None)
            current = record.comment_digest
        else:
            # Not known to us (a first pass, or a create whose answer was lost): the issue's
            # comments are searched for our marker before anything is posted.
            found = next(
                (c for c in await tracker.list_comments(issue.number) if is_ours(c.body)), None
            )
            ours, current = found, _digest(found.body) if found else None
        if ours is None:
            if is_quiet(draft, decision):
                return Posted(skipped=self._count_skip("quiet"))
            created = await tracker.create_comment(issue.number, body)
            self.metrics.github_actions.labels("comment_created").inc()
            return Posted(created, digest)
        if current == digest:
            return Posted(ours, digest)
        edited = await tracker.edit_comment(ours.id, body)
        if edited is None:  # deleted by someone: theirs to decide, we stay quiet
            return Posted(skipped=self._count_skip("comment_deleted"))
        self.metrics.github_actions.labels("comment_edited").inc()
        return Posted(edited, digest)

    async def _labels(
        self, tracker: Tracker, issue: IssueRef, decision: LabelDecision
    ) -> list[str]:
        applied: list[str] = []
        if decision.add:
            now = _lower(await tracker.add_labels(issue.number, decision.add))
            applied = [label for label in decision.add if label.lower() in now]
            self.metrics.github_actions.labels("labels_added").inc(len(applied))
        for label in decision.remove:
            await tracker.remove_label(issue.number, label)
            self.metrics.github_actions.labels("label_removed").inc()
        return applied

    async def _assign(
        self, tracker: Tracker, live: TrackerIssue, draft: InPlaceDraft
    ) -> str | None:
        # Only in apply mode, and never over a person already assigned.
        if self.mode != "apply" or draft.assignee is None or live.assignees:
            return None
        assignees = await tracker.add_assignees(live.number, [draft.assignee])
        if draft.assignee.lower() not in _lower(assignees):
            return None
        self.metrics.github_actions.labels("assigned").inc()
        return draft.assignee

    def _skipped(self, base: ActedOn, reason: str, version: int) -> tuple[ActedOn, RecordChange]:
        def change(r: IssueRecord) -> IssueRecord:
            if reason == "superseded":
                return r  # a later pass acted: what it recorded stands
            return r.model_copy(
                update={"acted_version": max(r.acted_version, version), "waiting": None}
            )

        return base.model_copy(update={"skipped": self._count_skip(reason)}), change

    def _count_skip(self, reason: str) -> str:
        self.metrics.github_actions.labels(f"skipped_{reason}").inc()
        return reason


@dataclass(frozen=True)
class Posted:
    comment: TrackerComment | None = None
    digest: str | None = None
    skipped: str | None = None


def _digest(body: str) -> str:
    return hashlib.sha256(body.encode()).hexdigest()


def _lower(labels: Sequence[str]) -> set[str]:
    return {label.lower() for label in labels}


def _union(first: Sequence[str], more: Sequence[str]) -> list[str]:
    known = _lower(first)
    return [*first, *(x for x in more if x.lower() not in known)]
