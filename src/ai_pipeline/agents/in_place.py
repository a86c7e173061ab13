"""Acting on an issue opened on GitHub, in place and exactly once (GitHub App mode).

The tracker agent hands each ``TriageCommentDrafted`` here. One pass over an issue:

1. **Ledger.** The entry of (repository, issue, triage version) is read: a pass already
   done answers with what it did. Otherwise it is written ``pending`` and the pass runs;
   everything below is safe to run again after a crash or an unknown outcome.
2. **One at a time.** A lock per issue in this process, and a short lease in the store
   across processes, so two passes never post at once.
3. **Read the issue now.** Closed, locked, gone, or already acted on by a later pass:
   nothing is done. Labels are decided against the issue's labels of this moment: humans
   win (``domain.github_labels``).
4. **One comment.** Our comment's id is in the issue's record; without it, the issue's
   comments are listed for our marker before anything is posted (a create whose answer was
   lost is found, not repeated). An existing comment is edited in place, never a second
   one posted; a comment someone deleted is not posted again; nothing useful to say and
   no comment yet: nothing is posted.
5. **Labels and assignee** (``apply`` mode): ours are recorded before they are added, so a
   crash never makes them look like a person's. Only ours are ever removed.
"""

from __future__ import annotations

import hashlib
import os
import socket
import uuid
from collections.abc import Mapping, Sequence
from typing import Literal

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
)
from ai_pipeline.domain.github_labels import LabelDecision, decide_labels
from ai_pipeline.domain.models import FiledIssue
from ai_pipeline.drafting.github_comment import is_ours, is_quiet, render_comment
from ai_pipeline.observability.metrics import Metrics
from ai_pipeline.ports import GitHubStore, OutgoingMessage, Tracker, TrackerIssue

Mode = Literal["suggest", "apply"]


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
        entry = await self.store.get_action(issue, version)
        if entry is not None and entry.state == "done" and entry.acted_on is not None:
            return entry.acted_on
        if not await self.store.lease(issue, self.holder, self.lease_seconds):
            raise UnavailableError(f"issue {issue} is being acted on by another process", 1.0)
        try:
            await self.store.put_action(
                ActionRecord(
                    repository=issue.repository,
                    number=issue.number,
                    version=version,
                    request_id=event.request_id,
                    state="pending",
                )
            )
            acted = await self._pass(event.draft, tracker, issue)
            await self.store.put_action(
                ActionRecord(
                    repository=issue.repository,
                    number=issue.number,
                    version=version,
                    request_id=event.request_id,
                    state="done",
                    acted_on=acted,
                )
            )
        finally:
            await self.store.release(issue, self.holder)
        return acted

    async def _pass(self, draft: InPlaceDraft, tracker: Tracker, issue: IssueRef) -> ActedOn:
        base = ActedOn(
            repository=issue.repository,
            issue_number=issue.number,
            mode=self.mode,
            version=draft.version,
        )
        live = await tracker.read_issue(issue.number)
        if live is None:
            return await self._skipped(issue, base, "gone", draft.version)
        base = base.model_copy(update={"issue_url": live.url})
        record = await self.store.get_issue(issue)
        if record is not None and record.acted_version > draft.version:
            return await self._skipped(issue, base, "superseded", draft.version)
        if live.state == "closed" or live.locked:
            reason = "closed" if live.state == "closed" else "locked"
            return await self._skipped(issue, base, reason, draft.version)
        known = record or IssueRecord(repository=issue.repository, number=issue.number)
        decision = decide_labels(
            draft.labels, live.labels, known.ours, known.human_removed, self.mode
        )
        if decision.add:
            known = await self.store.update_issue(
                issue, lambda r: r.model_copy(update={"ours": _union(r.ours, decision.add)})
            )
        body = render_comment(draft, decision, self.mode)
        comment_url, skipped = await self._comment(tracker, issue, known, draft, decision, body)
        applied = await self._labels(tracker, issue, decision)
        assignee = await self._assign(tracker, live, draft)
        removed = [label for label in decision.remove if label not in applied]

        def finish(r: IssueRecord) -> IssueRecord:
            return r.model_copy(
                update={
                    "acted_version": max(r.acted_version, draft.version),
                    "waiting": draft.waiting,
                    "ours": [x for x in r.ours if x.lower() not in _lower(removed)],
                }
            )

        await self.store.update_issue(issue, finish)
        return base.model_copy(
            update={
                "comment_url": comment_url,
                "labels_applied": applied,
                "labels_suggested": decision.suggest,
                "labels_removed": removed,
                "assignee": assignee,
                "skipped": skipped,
            }
        )

    async def _comment(
        self,
        tracker: Tracker,
        issue: IssueRef,
        record: IssueRecord,
        draft: InPlaceDraft,
        decision: LabelDecision,
        body: str,
    ) -> tuple[str | None, str | None]:
        """Post or edit our one comment: (its URL, or why there is none)."""
        if record.comment_deleted:
            return None, self._count_skip("comment_deleted")
        digest = hashlib.sha256(body.encode()).hexdigest()
        comment_id, url = record.comment_id, record.comment_url
        if comment_id is None:
            found = next(
                (c for c in await tracker.list_comments(issue.number) if is_ours(c.body)), None
            )
            if found is not None:
                comment_id, url = found.id, found.url
                digest_found = hashlib.sha256(found.body.encode()).hexdigest()
                await self._remember(issue, found.id, found.url, digest_found)
                record = record.model_copy(update={"comment_digest": digest_found})
        if comment_id is None:
            if is_quiet(draft, decision):
                return None, self._count_skip("quiet")
            created = await tracker.create_comment(issue.number, body)
            self.metrics.github_actions.labels("comment_created").inc()
            await self._remember(issue, created.id, created.url, digest)
            return created.url, None
        if record.comment_digest != digest:
            edited = await tracker.edit_comment(comment_id, body)
            if edited is None:  # deleted by someone: theirs to decide, we stay quiet
                await self.store.update_issue(
                    issue, lambda r: r.model_copy(update={"comment_deleted": True})
                )
                return None, self._count_skip("comment_deleted")
            self.metrics.github_actions.labels("comment_edited").inc()
            await self._remember(issue, edited.id, edited.url, digest)
        return url, None

    async def _remember(self, issue: IssueRef, comment_id: int, url: str, digest: str) -> None:
        await self.store.update_issue(
            issue,
            lambda r: r.model_copy(
                update={"comment_id": comment_id, "comment_url": url, "comment_digest": digest}
            ),
        )

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

    async def _skipped(self, issue: IssueRef, base: ActedOn, reason: str, version: int) -> ActedOn:
        await self.store.update_issue(
            issue,
            lambda r: (
                r.model_copy(
                    update={"acted_version": max(r.acted_version, version), "waiting": None}
                )
                if reason != "superseded"
                else r
            ),
        )
        return base.model_copy(update={"skipped": self._count_skip(reason)})

    def _count_skip(self, reason: str) -> str:
        self.metrics.github_actions.labels(f"skipped_{reason}").inc()
        return reason


def _lower(labels: Sequence[str]) -> set[str]:
    return {label.lower() for label in labels}


def _union(first: Sequence[str], more: Sequence[str]) -> list[str]:
    known = _lower(first)
    return [*first, *(x for x in more if x.lower() not in known)]
