"""The built-in tracker: numbered issues kept beside the requests, browsable over the API."""

from __future__ import annotations

import json
import sqlite3
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from ai_pipeline.adapters.sqlite_db import SqliteDatabase
from ai_pipeline.domain.models import FiledIssue, IssueDraft
from ai_pipeline.ports import OpenIssue, TrackerComment, TrackerIssue

ListChange = Callable[[list[str]], list[str]]

SCHEMA = """
CREATE TABLE IF NOT EXISTS local_issues (
    number INTEGER PRIMARY KEY AUTOINCREMENT,
    request_id TEXT NOT NULL UNIQUE,
    title TEXT NOT NULL,
    body TEXT NOT NULL,
    labels TEXT NOT NULL,
    assignees TEXT NOT NULL,
    state TEXT NOT NULL DEFAULT 'open',
    created_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS local_comments (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    issue_number INTEGER NOT NULL,
    request_id TEXT NOT NULL UNIQUE,
    body TEXT NOT NULL,
    created_at REAL NOT NULL
);
-- What happened to an issue after filing, and who did it (``us``: the pipeline, or
-- ``maintainer``): closed/reopened (detail: the close reason and duplicate), labeled and
-- unlabeled (detail: the label), edited. Comments are in local_comments.
CREATE TABLE IF NOT EXISTS local_issue_events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    issue_number INTEGER NOT NULL,
    at REAL NOT NULL,
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    detail TEXT NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS local_issue_events_by_issue ON local_issue_events (issue_number, id);
"""
# A comment's key says who wrote it: a request id (the pipeline: a report added to the
# issue), ``<request>:reply:<id>`` (a reporter's reply, posted by the pipeline),
# ``<request>:<what>`` (the pipeline's reminder or closing note), ``maintainer:<id>``.
MAINTAINER_KEY = "maintainer:"


@dataclass(frozen=True)
class LocalIssue:
    number: int
    request_id: str
    title: str
    body: str
    labels: list[str]
    assignees: list[str]
    state: str
    created_at: float
    url: str
    comments: list[dict[str, Any]]
    state_reason: str | None = None
    duplicate_of: int | None = None
    closed_at: float | None = None

    @property
    def followers(self) -> list[str]:
        """Requests whose fate is this issue's: the one it was filed for, and those added
        to it as comments (a comment keyed by a bare request id)."""
        added = [str(c["request_id"]) for c in self.comments if ":" not in c["request_id"]]
        return list(dict.fromkeys([self.request_id, *added]))

    def as_dict(self) -> dict[str, Any]:
        return {
            "number": self.number,
            "request_id": self.request_id,
            "title": self.title,
            "body": self.body,
            "labels": self.labels,
            "assignees": self.assignees,
            "state": self.state,
            "created_at": self.created_at,
            "url": self.url,
            "comments": self.comments,
            "state_reason": self.state_reason,
            "duplicate_of": self.duplicate_of,
            "closed_at": self.closed_at,
        }


_LABELLED_SECURITY = "SELECT 1 FROM json_each(local_issues.labels) WHERE value = 'security'"
# No issue can have a number beyond SQLite's integer range (found by schemathesis: a
# 27-digit number in GET /api/v1/issues/{number} was a 500).
SQLITE_MAX_INTEGER = 2**63


class LocalTracker:
    name = "local"
    listing_lag_seconds = 0.0  # one database: what was written is read at once

    def __init__(self, db: SqliteDatabase, base_url: str):
        self.db = db
        self.base_url = base_url.rstrip("/")
        db.add_schema(SCHEMA)

    async def open(self) -> None:
        """Open the database on first use (idempotent). Beside Redis the tracker has a file
        of its own, which a process that never files there (no private report yet) never
        opens, so it is not held open against a restore."""
        await self.db.start()

    async def create_issue(self, request_id: str, draft: IssueDraft) -> FiledIssue:
        await self.open()

        # One issue per request, enforced by the UNIQUE key: a retry returns the first one.
        def op(conn: sqlite3.Connection) -> tuple[int, bool]:
            cursor = conn.execute(
                "INSERT OR IGNORE INTO local_issues"
                " (request_id, title, body, labels, assignees, created_at)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (
                    request_id,
                    draft.title,
                    draft.body,
                    json.dumps(draft.labels),
                    json.dumps(draft.assignees),
                    time.time(),
                ),
            )
            (number,) = conn.execute(
                "SELECT number FROM local_issues WHERE request_id = ?", (request_id,)
            ).fetchone()
            return int(number), cursor.rowcount == 1

        number, created = await self.db.write(op)
        return FiledIssue(number=number, url=self.url(number), title=draft.title, created=created)

    async def find_filed(self, request_id: str, since: datetime | None = None) -> FiledIssue | None:
        await self.open()
        rows = self.db.read(
            "SELECT number, title FROM local_issues WHERE request_id = ?", (request_id,)
        )
        if not rows:
            return None
        number = int(rows[0]["number"])
        return FiledIssue(
            number=number, url=self.url(number), title=rows[0]["title"], created=False
        )

    async def open_issue(self, number: int) -> OpenIssue | None:
        await self.open()
        issue = self.get_issue(number)
        if issue is None or issue.state != "open":
            return None
        return OpenIssue(number, issue.url, issue.title, len(issue.comments))

    async def add_comment(self, request_id: str, number: int, body: str) -> FiledIssue:
        comment_id, created = await self._insert_comment(request_id, number, body)
        return self._comment(number, comment_id, created)

    async def _insert_comment(self, key: str, number: int, body: str) -> tuple[int, bool]:
        """One comment per key (a request id), as for issues: a retry finds the first one."""
        await self.open()

        def op(conn: sqlite3.Connection) -> tuple[int, bool]:
            cursor = conn.execute(
                "INSERT OR IGNORE INTO local_comments (issue_number, request_id, body, created_at)"
                " VALUES (?, ?, ?, ?)",
                (number, key, body, time.time()),
            )
            (comment_id,) = conn.execute(
                "SELECT id FROM local_comments WHERE request_id = ?", (key,)
            ).fetchone()
            return int(comment_id), cursor.rowcount == 1

        return await self.db.write(op)

    async def find_comment(
        self, request_id: str, number: int, since: datetime | None = None
    ) -> FiledIssue | None:
        await self.open()
        rows = self.db.read(
            "SELECT id FROM local_comments WHERE request_id = ? AND issue_number = ?",
            (request_id, number),
        )
        return self._comment(number, int(rows[0]["id"]), False) if rows else None

    # --- acting on an issue in place ------------------------------------------------------

    async def read_issue(self, number: int) -> TrackerIssue | None:
        await self.open()
        issue = self.get_issue(number)
        if issue is None:
            return None
        return TrackerIssue(
            number=issue.number,
            url=issue.url,
            title=issue.title,
            state=issue.state,
            state_reason=None,
            labels=tuple(issue.labels),
            author=None,  # the reporter's address stays in the service
            locked=False,
            assignees=tuple(issue.assignees),
        )

    async def list_comments(
        self, number: int, since: datetime | None = None
    ) -> list[TrackerComment]:
        await self.open()
        after = since.timestamp() if since is not None else 0.0
        rows = self.db.read(
            "SELECT id, body, created_at FROM local_comments"
            " WHERE issue_number = ? AND created_at >= ? ORDER BY id",
            (number, after),
        )
        return [self._tracker_comment(number, row) for row in rows]

    async def create_comment(self, number: int, body: str) -> TrackerComment:
        # Comments not tied to a request get a key of their own (the column is unique).
        comment_id, _ = await self._insert_comment(f"comment:{uuid.uuid4().hex}", number, body)
        rows = self.db.read(
            "SELECT id, body, created_at FROM local_comments WHERE id = ?", (comment_id,)
        )
        return self._tracker_comment(number, rows[0])

    async def edit_comment(self, comment_id: int, body: str) -> TrackerComment | None:
        await self.open()

        def op(conn: sqlite3.Connection) -> sqlite3.Row | None:
            conn.execute("UPDATE local_comments SET body = ? WHERE id = ?", (body, comment_id))
            row: sqlite3.Row | None = conn.execute(
                "SELECT id, issue_number, body, created_at FROM local_comments WHERE id = ?",
                (comment_id,),
            ).fetchone()
            return row

        row = await self.db.write(op)
        return None if row is None else self._tracker_comment(int(row["issue_number"]), row)

    async def add_labels(self, number: int, labels: Sequence[str]) -> list[str]:
        def change(current: list[str]) -> list[str]:
            known = {label.lower() for label in current}
            return current + [x for x in dict.fromkeys(labels) if x.lower() not in known]

        return await self._change_list(number, "labels", change)

    async def remove_label(self, number: int, label: str) -> None:
        await self._change_list(
            number, "labels", lambda current: [x for x in current if x.lower() != label.lower()]
        )

    async def add_assignees(self, number: int, logins: Sequence[str]) -> list[str]:
        def change(current: list[str]) -> list[str]:
            known = {login.lower() for login in current}
            return current + [x for x in dict.fromkeys(logins) if x.lower() not in known]

        return await self._change_list(number, "assignees", change)

    async def _change_list(
        self, number: int, column: Literal["labels", "assignees"], change: ListChange
    ) -> list[str]:
        await self.open()

        def op(conn: sqlite3.Connection) -> list[str]:
            row = conn.execute(
                f"SELECT {column} FROM local_issues WHERE number = ?", (number,)
            ).fetchone()
            if row is None:
                return []
            values: list[str] = change(json.loads(row[0]))
            conn.execute(
                f"UPDATE local_issues SET {column} = ? WHERE number = ?",
                (json.dumps(values), number),
            )
            return values

        return await self.db.write(op)

    def _tracker_comment(self, number: int, row: sqlite3.Row) -> TrackerComment:
        at = datetime.fromtimestamp(float(row["created_at"]), UTC)
        return TrackerComment(
            id=int(row["id"]),
            url=f"{self.url(number)}#comment-{row['id']}",
            body=str(row["body"]),
            author=None,
            created_at=at,
            updated_at=at,
        )

    def _comment(self, number: int, comment_id: int, created: bool) -> FiledIssue:
        url = f"{self.url(number)}#comment-{comment_id}"
        return FiledIssue(number=number, url=url, created=created, comment=True)

    def url(self, number: int) -> str:
        return f"{self.base_url}/api/v1/issues/{number}"

    def list_issues(
        self, limit: int, offset: int, private: bool = True
    ) -> tuple[list[LocalIssue], int]:
        """Newest first; ``private``: security issues (labelled ``security``) included."""
        where = "" if private else f"WHERE NOT EXISTS ({_LABELLED_SECURITY})"
        (total,) = self.db.read(f"SELECT count(*) FROM local_issues {where}")[0]
        rows = self.db.read(
            f"SELECT * FROM local_issues {where} ORDER BY number DESC LIMIT ? OFFSET ?",
            (limit, offset),
        )
        return [self._issue(r) for r in rows], int(total)

    def get_issue(self, number: int) -> LocalIssue | None:
        if not 0 < number < SQLITE_MAX_INTEGER:  # beyond it SQLite raises OverflowError
            return None
        rows = self.db.read("SELECT * FROM local_issues WHERE number = ?", (number,))
        return self._issue(rows[0]) if rows else None

    def _issue(self, row: sqlite3.Row) -> LocalIssue:
        comments = self.db.read(
            "SELECT id, request_id, body, created_at FROM local_comments"
            " WHERE issue_number = ? ORDER BY id",
            (row["number"],),
        )
        closure: dict[str, Any] = {}
        if row["state"] == "closed":
            closed = self.db.read(
                "SELECT at, detail FROM local_issue_events WHERE issue_number = ?"
                " AND action = 'closed' ORDER BY id DESC LIMIT 1",
                (row["number"],),
            )
            if closed:
                detail = json.loads(closed[0]["detail"] or "{}")
                closure = {
                    "state_reason": detail.get("reason"),
                    "duplicate_of": detail.get("duplicate_of"),
                    "closed_at": closed[0]["at"],
                }
        return LocalIssue(
            number=row["number"],
            request_id=row["request_id"],
            title=row["title"],
            body=row["body"],
            labels=json.loads(row["labels"]),
            assignees=json.loads(row["assignees"]),
            state=row["state"],
            created_at=row["created_at"],
            url=self.url(row["number"]),
            comments=[dict(c) for c in comments],
            **closure,
        )

    async def ping(self) -> dict[str, Any]:
        if not self.db.started:  # a probe must not open (and hold) the file: see ``open``
            return {"status": "healthy", "backend": "local", "opened": False}
        self.db.read("SELECT 1")
        return {"status": "healthy", "backend": "local"}

    async def close(self) -> None:
        return None
