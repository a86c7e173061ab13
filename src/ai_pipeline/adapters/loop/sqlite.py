"""The loop store in the service's SQLite file: conversations, deliveries, replies, opt-outs.

Nothing here expires: SQLite keeps finished requests too, and the daily backup carries it.
"""

from __future__ import annotations

import os
import sqlite3
from datetime import datetime
from typing import Any

from ai_pipeline.adapters.sqlite_db import SqliteDatabase
from ai_pipeline.domain.conversation import Conversation
from ai_pipeline.domain.notifications import Delivery, DeliveryState
from ai_pipeline.domain.replies import ReplyRecord

SCHEMA = """
CREATE TABLE IF NOT EXISTS loop_conversations (
    request_id TEXT PRIMARY KEY,
    tracker TEXT NOT NULL,
    issue_number INTEGER NOT NULL,
    resolved_at REAL,
    needs_info INTEGER NOT NULL,
    unresolved_issue INTEGER NOT NULL,
    doc TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS loop_conversations_by_issue
    ON loop_conversations (tracker, issue_number);
CREATE INDEX IF NOT EXISTS loop_conversations_resolved
    ON loop_conversations (resolved_at) WHERE resolved_at IS NOT NULL;
CREATE INDEX IF NOT EXISTS loop_conversations_needing_info
    ON loop_conversations (request_id) WHERE needs_info = 1;
CREATE TABLE IF NOT EXISTS loop_deliveries (
    delivery_id TEXT PRIMARY KEY,
    state TEXT NOT NULL,
    next_at REAL,
    doc TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS loop_deliveries_due
    ON loop_deliveries (next_at) WHERE state = 'pending';
CREATE TABLE IF NOT EXISTS loop_replies (
    reply_id TEXT PRIMARY KEY,
    request_id TEXT NOT NULL,
    at REAL NOT NULL,
    doc TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS loop_replies_by_request ON loop_replies (request_id, at);
CREATE TABLE IF NOT EXISTS loop_opt_outs (
    address_key TEXT PRIMARY KEY,
    at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS loop_secrets (
    name TEXT PRIMARY KEY,
    value BLOB NOT NULL
);
"""


class SqliteLoopStore:
    def __init__(self, db: SqliteDatabase):
        self.db = db
        db.add_schema(SCHEMA)

    async def start(self) -> None:
        await self.db.start()

    async def close(self) -> None:
        return None  # the database is closed by whoever opened it (the service)

    async def signing_key(self) -> bytes:
        candidate = os.urandom(32)

        def op(conn: sqlite3.Connection) -> bytes:
            conn.execute(
                "INSERT OR IGNORE INTO loop_secrets (name, value) VALUES ('signing', ?)",
                (candidate,),
            )
            (value,) = conn.execute(
                "SELECT value FROM loop_secrets WHERE name = 'signing'"
            ).fetchone()
            return bytes(value)

        return await self.db.write(op)

    async def get_conversation(self, request_id: str) -> Conversation | None:
        rows = self.db.read(
            "SELECT doc FROM loop_conversations WHERE request_id = ?", (request_id,)
        )
        return Conversation.model_validate_json(rows[0][0]) if rows else None

    async def put_conversation(self, conversation: Conversation) -> None:
        c = conversation
        resolution = c.resolution
        resolved_at = resolution.at.timestamp() if resolution.state.resolved else None
        unresolved = c.filed_as == "issue" and not resolution.state.resolved
        values = (
            c.request_id,
            c.tracker,
            c.issue_number,
            resolved_at,
            int(c.needs_info),
            int(unresolved),
            c.model_dump_json(),
        )
        await self.db.write(
            lambda conn: conn.execute(
                "INSERT OR REPLACE INTO loop_conversations (request_id, tracker, issue_number,"
                " resolved_at, needs_info, unresolved_issue, doc) VALUES (?, ?, ?, ?, ?, ?, ?)",
                values,
            )
        )

    async def following(self, tracker: str, issue_number: int) -> list[str]:
        rows = self.db.read(
            "SELECT request_id FROM loop_conversations WHERE tracker = ? AND issue_number = ?"
            " ORDER BY request_id",
            (tracker, issue_number),
        )
        return [str(r[0]) for r in rows]

    async def needing_info(self, limit: int, after: str = "") -> list[Conversation]:
        rows = self.db.read(
            "SELECT doc FROM loop_conversations WHERE needs_info = 1 AND request_id > ?"
            " ORDER BY request_id LIMIT ?",
            (after, limit),
        )
        return [Conversation.model_validate_json(r[0]) for r in rows]

    async def resolved_since(self, since: datetime) -> list[Conversation]:
        rows = self.db.read(
            "SELECT doc FROM loop_conversations WHERE resolved_at >= ? ORDER BY resolved_at",
            (since.timestamp(),),
        )
        return [Conversation.model_validate_json(r[0]) for r in rows]

    async def count_unresolved(self) -> int:
        (count,) = self.db.read(
            "SELECT count(*) FROM loop_conversations WHERE unresolved_issue = 1"
        )[0]
        return int(count)

    async def get_delivery(self, delivery_id: str) -> Delivery | None:
        rows = self.db.read("SELECT doc FROM loop_deliveries WHERE delivery_id = ?", (delivery_id,))
        return Delivery.model_validate_json(rows[0][0]) if rows else None

    async def put_delivery(self, delivery: Delivery) -> None:
        values = _delivery_row(delivery)
        await self.db.write(
            lambda conn: conn.execute(
                "INSERT OR REPLACE INTO loop_deliveries (delivery_id, state, next_at, doc)"
                " VALUES (?, ?, ?, ?)",
                values,
            )
        )

    async def claim_due(self, now: datetime, lease_until: datetime, limit: int) -> list[Delivery]:
        def op(conn: sqlite3.Connection) -> list[Delivery]:
            rows = conn.execute(
                "SELECT doc FROM loop_deliveries WHERE state = 'pending' AND next_at <= ?"
                " ORDER BY next_at LIMIT ?",
                (now.timestamp(), limit),
            ).fetchall()
            claimed = [
                Delivery.model_validate_json(r[0]).model_copy(
                    update={"next_attempt_at": lease_until}
                )
                for r in rows
            ]
            conn.executemany(
                "UPDATE loop_deliveries SET state = ?, next_at = ?, doc = ? WHERE delivery_id = ?",
                [(*_delivery_row(d)[1:], d.delivery_id) for d in claimed],
            )
            return claimed

        return await self.db.write(op)

    async def get_reply(self, reply_id: str) -> ReplyRecord | None:
        rows = self.db.read("SELECT doc FROM loop_replies WHERE reply_id = ?", (reply_id,))
        return ReplyRecord.model_validate_json(rows[0][0]) if rows else None

    async def put_reply(self, reply: ReplyRecord) -> None:
        values = (reply.reply_id, reply.request_id, reply.at.timestamp(), reply.model_dump_json())
        await self.db.write(
            lambda conn: conn.execute(
                "INSERT OR REPLACE INTO loop_replies (reply_id, request_id, at, doc)"
                " VALUES (?, ?, ?, ?)",
                values,
            )
        )

    async def replies_of(self, request_id: str) -> list[ReplyRecord]:
        rows = self.db.read(
            "SELECT doc FROM loop_replies WHERE request_id = ? ORDER BY at, reply_id",
            (request_id,),
        )
        return [ReplyRecord.model_validate_json(r[0]) for r in rows]

    async def opt_out(self, address_key: str, at: datetime) -> None:
        await self.db.write(
            lambda conn: conn.execute(
                "INSERT OR IGNORE INTO loop_opt_outs (address_key, at) VALUES (?, ?)",
                (address_key, at.timestamp()),
            )
        )

    async def opted_out(self, address_key: str) -> bool:
        rows = self.db.read("SELECT 1 FROM loop_opt_outs WHERE address_key = ?", (address_key,))
        return bool(rows)

    async def ping(self) -> dict[str, Any]:
        return self.db.ping()


def _delivery_row(delivery: Delivery) -> tuple[str, str, float | None, str]:
    due = delivery.next_attempt_at if delivery.state is DeliveryState.PENDING else None
    return (
        delivery.delivery_id,
        delivery.state.value,
        None if due is None else due.timestamp(),
        delivery.model_dump_json(),
    )
