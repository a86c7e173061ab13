"""The local tracker's issues after filing: closed and reopened (with a reason), labelled,
commented by maintainers, and read back as the timeline the follow-up rules judge.

Kept apart from ``local.py`` (filing) on the same tables; every change is an event row
with its actor, so "who spoke last" is known as it is on GitHub.
"""

from __future__ import annotations

import json
import sqlite3
import uuid
from collections.abc import Callable, Sequence
from datetime import UTC, datetime

from ai_pipeline.adapters.trackers.local import MAINTAINER_KEY, LocalIssue, LocalTracker
from ai_pipeline.domain.follow_up import Activity, Actor, IssueView
from ai_pipeline.domain.replies import is_reply_key
from ai_pipeline.domain.resolution import CloseReason, closed, reopened
from ai_pipeline.drafting.loop_text import mark_answered
from ai_pipeline.loop_ports import IssueChange
from ai_pipeline.triage.rules import NEEDS_INFO_LABEL

US = "us"
MAINTAINER = "maintainer"


class NoSuchIssue(LookupError):
    pass


def _now() -> datetime:
    return datetime.now(UTC)


class LocalConversationTracker:
    def __init__(self, tracker: LocalTracker, clock: Callable[[], datetime] = _now):
        self.tracker = tracker
        self.name = tracker.name
        self.db = tracker.db
        self.clock = clock

    async def close_issue(
        self,
        number: int,
        reason: CloseReason,
        actor: str = MAINTAINER,
        duplicate_of: int | None = None,
    ) -> IssueChange:
        """Close it; an issue already closed stays as it was closed (and says so)."""
        at = self.clock()
        resolution = closed(reason, at, duplicate_of)  # checks the reason and duplicate
        detail = json.dumps({"reason": reason.value, "duplicate_of": duplicate_of})

        def op(conn: sqlite3.Connection) -> bool:
            cursor = conn.execute(
                "UPDATE local_issues SET state = 'closed' WHERE number = ? AND state = 'open'",
                (number,),
            )
            if cursor.rowcount:
                _event(conn, number, at, actor, "closed", detail)
            return cursor.rowcount > 0

        changed = await self._write(number, op)
        issue = self._issue(number)
        if not changed and issue.state_reason is not None and issue.closed_at is not None:
            when = datetime.fromtimestamp(issue.closed_at, UTC)
            resolution = closed(CloseReason(issue.state_reason), when, issue.duplicate_of)
        return IssueChange(resolution, issue.followers, changed)

    async def reopen_issue(self, number: int, actor: str = MAINTAINER) -> IssueChange:
        at = self.clock()

        def op(conn: sqlite3.Connection) -> bool:
            cursor = conn.execute(
                "UPDATE local_issues SET state = 'open' WHERE number = ? AND state = 'closed'",
                (number,),
            )
            if cursor.rowcount:
                _event(conn, number, at, actor, "reopened", "")
            return cursor.rowcount > 0

        changed = await self._write(number, op)
        rows = self.db.read(
            "SELECT at FROM local_issue_events WHERE issue_number = ? AND action = 'reopened'"
            " ORDER BY id DESC LIMIT 1",
            (number,),
        )
        issue = self._issue(number)
        if issue.state != "open" or not rows:
            return IssueChange(None, issue.followers, changed)
        when = datetime.fromtimestamp(rows[0][0], UTC)
        return IssueChange(reopened(when), issue.followers, changed)

    async def comment(self, number: int, body: str) -> int:
        """A maintainer's comment; its id."""
        await self.tracker.open()
        self._issue(number)
        key = f"{MAINTAINER_KEY}{uuid.uuid4().hex}"
        filed = await self.tracker.add_comment(key, number, body)
        return int(filed.url.rpartition("-")[2])

    async def label(
        self,
        number: int,
        add: Sequence[str] = (),
        remove: Sequence[str] = (),
        actor: str = MAINTAINER,
    ) -> LocalIssue:
        at = self.clock()

        def op(conn: sqlite3.Connection) -> bool:
            (raw,) = conn.execute(
                "SELECT labels FROM local_issues WHERE number = ?", (number,)
            ).fetchone()
            labels: list[str] = json.loads(raw)
            gone = [label for label in remove if label in labels]
            new = [label for label in dict.fromkeys(add) if label not in labels]
            kept = [label for label in labels if label not in gone]
            conn.execute(
                "UPDATE local_issues SET labels = ? WHERE number = ?",
                (json.dumps([*kept, *new]), number),
            )
            for label in new:
                _event(conn, number, at, actor, "labeled", label)
            for label in gone:
                _event(conn, number, at, actor, "unlabeled", label)
            return True

        await self._write(number, op)
        return self._issue(number)

    async def questions_answered(self, number: int, answered: Sequence[str]) -> None:
        """``needs-info`` off and the body's questions marked answered (both idempotent)."""
        await self.label(number, remove=[NEEDS_INFO_LABEL], actor=US)
        at = self.clock()

        def op(conn: sqlite3.Connection) -> bool:
            (body,) = conn.execute(
                "SELECT body FROM local_issues WHERE number = ?", (number,)
            ).fetchone()
            marked = mark_answered(body, answered)
            if marked != body:
                conn.execute("UPDATE local_issues SET body = ? WHERE number = ?", (marked, number))
                _event(conn, number, at, US, "edited", "questions answered")
            return True

        await self._write(number, op)

    async def issue_view(self, number: int) -> IssueView | None:
        await self.tracker.open()
        issue = self.tracker.get_issue(number)
        if issue is None:
            return None
        activity = [
            Activity(_at(c["created_at"]), _comment_actor(str(c["request_id"])), "comment")
            for c in issue.comments
        ]
        rows = self.db.read(
            "SELECT at, actor, action FROM local_issue_events WHERE issue_number = ? ORDER BY id",
            (number,),
        )
        activity += [
            Activity(_at(r["at"]), Actor.US if r["actor"] == US else Actor.MAINTAINER, r["action"])
            for r in rows
        ]
        return IssueView(
            open=issue.state == "open",
            labels=frozenset(issue.labels),
            activity=tuple(sorted(activity, key=lambda a: a.at)),
        )

    async def _write(self, number: int, op: Callable[[sqlite3.Connection], bool]) -> bool:
        await self.tracker.open()
        self._issue(number)
        return await self.db.write(op)

    def _issue(self, number: int) -> LocalIssue:
        issue = self.tracker.get_issue(number)
        if issue is None:
            raise NoSuchIssue(f"no local issue #{number}")
        return issue


def _event(
    conn: sqlite3.Connection, number: int, at: datetime, actor: str, action: str, detail: str
) -> None:
    conn.execute(
        "INSERT INTO local_issue_events (issue_number, at, actor, action, detail)"
        " VALUES (?, ?, ?, ?, ?)",
        (number, at.timestamp(), actor, action, detail),
    )


def _at(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)


def _comment_actor(key: str) -> Actor:
    if key.startswith(MAINTAINER_KEY):
        return Actor.MAINTAINER
    return Actor.REPORTER if is_reply_key(key) else Actor.US
