"""The GitHub App mode's records in the embedded SQLite file (``ports.GitHubStore``).

Repositories are keyed lower-cased (GitHub's names are case-blind); records keep the
spelling the webhooks used. Every write is one transaction of the group commit, so a
read-modify-write of an issue record is atomic.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable
from typing import Any

from ai_pipeline.adapters.sqlite_db import SqliteDatabase
from ai_pipeline.domain.github import ActionRecord, IssueRecord, IssueRef, new_record
from ai_pipeline.ports import PassStart

SCHEMA = """
CREATE TABLE IF NOT EXISTS github_issues (
    repository TEXT NOT NULL,
    number INTEGER NOT NULL,
    record TEXT NOT NULL,
    PRIMARY KEY (repository, number)
);
CREATE TABLE IF NOT EXISTS github_actions (
    repository TEXT NOT NULL,
    number INTEGER NOT NULL,
    version INTEGER NOT NULL,
    record TEXT NOT NULL,
    updated_at REAL NOT NULL,
    PRIMARY KEY (repository, number, version)
);
CREATE TABLE IF NOT EXISTS github_deliveries (
    delivery_id TEXT PRIMARY KEY,
    event TEXT NOT NULL,
    received_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS github_deliveries_by_age ON github_deliveries (received_at);
CREATE TABLE IF NOT EXISTS github_leases (
    repository TEXT NOT NULL,
    number INTEGER NOT NULL,
    holder TEXT NOT NULL,
    until REAL NOT NULL,
    PRIMARY KEY (repository, number)
);
"""

DELIVERY_RETENTION_SECONDS = 7 * 86400
PRUNE_EVERY = 1000  # deliveries marked between two prunes of old ones


class SqliteGitHubStore:
    def __init__(self, db: SqliteDatabase):
        self.db = db
        self._marked = 0
        db.add_schema(SCHEMA)

    async def start(self) -> None:
        await self.db.start()

    async def close(self) -> None:
        return None  # the file closes with the state store that shares it

    async def get_issue(self, issue: IssueRef) -> IssueRecord | None:
        rows = self.db.read(
            "SELECT record FROM github_issues WHERE repository = ? AND number = ?", _key(issue)
        )
        return IssueRecord.model_validate_json(rows[0][0]) if rows else None

    async def update_issue(
        self, issue: IssueRef, change: Callable[[IssueRecord], IssueRecord]
    ) -> IssueRecord:
        def op(conn: sqlite3.Connection) -> IssueRecord:
            updated = change(_record(conn, issue) or new_record(issue))
            _put_record(conn, issue, updated)
            return updated

        return await self.db.write(op)

    async def issues(self, repository: str) -> list[IssueRecord]:
        rows = self.db.read(
            "SELECT record FROM github_issues WHERE repository = ? ORDER BY number",
            (repository.lower(),),
        )
        return [IssueRecord.model_validate_json(row[0]) for row in rows]

    async def get_action(self, issue: IssueRef, version: int) -> ActionRecord | None:
        rows = self.db.read(
            "SELECT record FROM github_actions WHERE repository = ? AND number = ? AND version = ?",
            (*_key(issue), version),
        )
        return ActionRecord.model_validate_json(rows[0][0]) if rows else None

    async def begin_pass(
        self, action: ActionRecord, holder: str, lease_seconds: float
    ) -> tuple[PassStart, ActionRecord | None, IssueRecord | None]:
        now = time.time()

        def op(
            conn: sqlite3.Connection,
        ) -> tuple[PassStart, ActionRecord | None, IssueRecord | None]:
            record = _record(conn, action.ref)
            done = _action(conn, action.ref, action.version)
            if done is not None and done.state == "done":
                return "acted", done, record
            if not _take_lease(conn, action.ref, holder, now, lease_seconds):
                return "busy", None, None
            _put_action(conn, action, now)
            return "go", None, record

        return await self.db.write(op)

    async def end_pass(
        self, action: ActionRecord, change: Callable[[IssueRecord], IssueRecord], holder: str
    ) -> IssueRecord:
        now = time.time()

        def op(conn: sqlite3.Connection) -> IssueRecord:
            _put_action(conn, action, now)
            updated = change(_record(conn, action.ref) or new_record(action.ref))
            _put_record(conn, action.ref, updated)
            _release(conn, action.ref, holder)
            return updated

        return await self.db.write(op)

    async def seen_delivery(self, delivery_id: str) -> bool:
        rows = self.db.read("SELECT 1 FROM github_deliveries WHERE delivery_id = ?", (delivery_id,))
        return bool(rows)

    async def mark_delivery(self, delivery_id: str, event: str) -> None:
        self._marked += 1
        prune = self._marked % PRUNE_EVERY == 0
        now = time.time()

        def op(conn: sqlite3.Connection) -> None:
            conn.execute(
                "INSERT OR IGNORE INTO github_deliveries (delivery_id, event, received_at)"
                " VALUES (?, ?, ?)",
                (delivery_id, event, now),
            )
            if prune:
                conn.execute(
                    "DELETE FROM github_deliveries WHERE received_at < ?",
                    (now - DELIVERY_RETENTION_SECONDS,),
                )

        await self.db.write(op)

    async def lease(self, issue: IssueRef, holder: str, seconds: float) -> bool:
        now = time.time()
        return await self.db.write(lambda conn: _take_lease(conn, issue, holder, now, seconds))

    async def release(self, issue: IssueRef, holder: str) -> None:
        await self.db.write(lambda conn: _release(conn, issue, holder))

    async def ping(self) -> dict[str, Any]:
        return self.db.ping()


def _key(issue: IssueRef) -> tuple[str, int]:
    return issue.repository.lower(), issue.number


def _record(conn: sqlite3.Connection, issue: IssueRef) -> IssueRecord | None:
    row = conn.execute(
        "SELECT record FROM github_issues WHERE repository = ? AND number = ?", _key(issue)
    ).fetchone()
    return IssueRecord.model_validate_json(row[0]) if row else None


def _put_record(conn: sqlite3.Connection, issue: IssueRef, record: IssueRecord) -> None:
    conn.execute(
        "INSERT INTO github_issues (repository, number, record) VALUES (?, ?, ?)"
        " ON CONFLICT(repository, number) DO UPDATE SET record = excluded.record",
        (*_key(issue), record.model_dump_json()),
    )


def _action(conn: sqlite3.Connection, issue: IssueRef, version: int) -> ActionRecord | None:
    row = conn.execute(
        "SELECT record FROM github_actions WHERE repository = ? AND number = ? AND version = ?",
        (*_key(issue), version),
    ).fetchone()
    return ActionRecord.model_validate_json(row[0]) if row else None


def _put_action(conn: sqlite3.Connection, action: ActionRecord, now: float) -> None:
    conn.execute(
        "INSERT INTO github_actions (repository, number, version, record, updated_at)"
        " VALUES (?, ?, ?, ?, ?) ON CONFLICT(repository, number, version) DO UPDATE"
        " SET record = excluded.record, updated_at = excluded.updated_at",
        (*_key(action.ref), action.version, action.model_dump_json(), now),
    )


def _take_lease(
    conn: sqlite3.Connection, issue: IssueRef, holder: str, now: float, seconds: float
) -> bool:
    cursor = conn.execute(
        "INSERT INTO github_leases (repository, number, holder, until)"
        " VALUES (?, ?, ?, ?) ON CONFLICT(repository, number) DO UPDATE"
        " SET holder = excluded.holder, until = excluded.until"
        " WHERE github_leases.holder = excluded.holder OR github_leases.until < ?",
        (*_key(issue), holder, now + seconds, now),
    )
    return cursor.rowcount == 1


def _release(conn: sqlite3.Connection, issue: IssueRef, holder: str) -> None:
    conn.execute(
        "DELETE FROM github_leases WHERE repository = ? AND number = ? AND holder = ?",
        (*_key(issue), holder),
    )
