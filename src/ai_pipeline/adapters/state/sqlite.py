"""The embedded state store: request records, the filing ledger, in the shared SQLite file."""

from __future__ import annotations

import json
import sqlite3
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from datetime import date, datetime
from typing import Any

from ai_pipeline.adapters.bus.sqlite import SqliteBus
from ai_pipeline.adapters.sqlite_db import SqliteDatabase
from ai_pipeline.domain.events import AGENT_STEPS, Step, StepStatus
from ai_pipeline.domain.liveness import Heartbeat
from ai_pipeline.domain.models import BugReport, FiledIssue
from ai_pipeline.domain.request_state import RequestState, RequestStatus, StateEvent, fold
from ai_pipeline.domain.submissions import (
    OPEN_SCOPE,
    IdConflict,
    canonical_json,
    digest,
    fingerprint,
    lookups,
)
from ai_pipeline.ports import (
    Bus,
    FilingClaim,
    FilingRecord,
    OutgoingMessage,
    Page,
    RequestStats,
)

# A report's id and Idempotency-Key are looked up within ``lookup_scope`` (the scope of the
# key that submitted it, ``domain.submissions``), beside the report's ``fingerprint``; NULL
# once the lookups are forgotten (``expire_lookups``), or while a request rebuilt from the
# log has no report yet. Two clients may use one id: it is not unique by itself.
REQUESTS = """
CREATE TABLE IF NOT EXISTS requests (
    request_id TEXT PRIMARY KEY,
    bug_report_id TEXT NOT NULL,
    idempotency_key TEXT,
    status TEXT NOT NULL,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL,
    processing_seconds REAL,
    state TEXT NOT NULL,
    report TEXT,
    lookup_scope TEXT,
    fingerprint TEXT
);
"""
# Created once ``_scope_report_ids`` has brought an older table up to date.
REQUEST_INDEXES = """
CREATE INDEX IF NOT EXISTS requests_by_status ON requests (status, created_at);
CREATE INDEX IF NOT EXISTS requests_by_created ON requests (created_at);
CREATE UNIQUE INDEX IF NOT EXISTS requests_by_scoped_id
    ON requests (lookup_scope, bug_report_id) WHERE lookup_scope IS NOT NULL;
-- Partial: most reports come without a key, and they need no index entry.
CREATE UNIQUE INDEX IF NOT EXISTS requests_by_scoped_key
    ON requests (lookup_scope, idempotency_key)
    WHERE lookup_scope IS NOT NULL AND idempotency_key IS NOT NULL;
"""
SCHEMA = (
    REQUESTS
    + """
CREATE TABLE IF NOT EXISTS filings (
    request_id TEXT PRIMARY KEY,
    state TEXT NOT NULL,
    issue TEXT,
    updated_at REAL NOT NULL
);
-- A pending filing's lease and attempt times (FilingRecord), beside ``filings`` so that a
-- database from before them needs no migration; gone once the request is filed.
CREATE TABLE IF NOT EXISTS filing_leases (
    request_id TEXT PRIMARY KEY,
    owner TEXT,
    lease_until REAL,
    attempted_at REAL,
    pending_since REAL
);
-- Each agent process's heartbeat (domain.liveness), forgotten once it expires.
CREATE TABLE IF NOT EXISTS agent_heartbeats (
    agent TEXT NOT NULL,
    instance TEXT NOT NULL,
    beat TEXT NOT NULL,
    expires_at REAL NOT NULL,
    PRIMARY KEY (agent, instance)
);
-- Report embeddings for seeding the duplicate index after a restart (see StateStore).
CREATE TABLE IF NOT EXISTS embeddings (
    request_id TEXT PRIMARY KEY,
    vector BLOB NOT NULL
);
-- The daily report's counters (ai_pipeline.reporting), one row per day and name.
CREATE TABLE IF NOT EXISTS daily_stats (
    day TEXT NOT NULL,
    name TEXT NOT NULL,
    value REAL NOT NULL,
    PRIMARY KEY (day, name)
);
-- Maintainers' review corrections kept as labelled examples, one per request, in the order
-- first stored (``seq``: a replaced example keeps its place); never expired.
CREATE TABLE IF NOT EXISTS review_examples (
    seq INTEGER PRIMARY KEY,
    request_id TEXT NOT NULL UNIQUE,
    example TEXT NOT NULL,
    updated_at REAL NOT NULL
);
"""
)

# ``RequestState.held_for_review`` in SQL, over a row of ``requests``. ``IS`` rather than
# ``=``: a missing JSON path gives NULL, and ``NOT`` of NULL would drop the row.
# The column each kind of lookup (``domain.submissions.lookups``) reads.
_LOOKUP_COLUMNS = {"id": "bug_report_id", "key": "idempotency_key"}

HELD = (
    f"(status = '{RequestStatus.PROCESSING.value}'"
    f" AND json_extract(state, '$.current_step') IS '{Step.REVIEW.value}'"
    f" AND json_extract(state, '$.progress.{Step.REVIEW.value}.status')"
    f" IS '{StepStatus.STARTED.value}')"
)


class SqliteStateStore:
    def __init__(
        self,
        db: SqliteDatabase,
        bus: Bus,
        same_file_bus: SqliteBus | None = None,
        lookup_ttl_seconds: float = 30 * 86400,
    ):
        """``same_file_bus``: the bus when it lives in ``db`` too, so a new request and its
        first messages commit together; otherwise they are published after the insert.
        ``lookup_ttl_seconds``: how long after its request ended a report id or idempotency
        key is still recognised (``expire_lookups``; always while it is in flight)."""
        if same_file_bus is not None and same_file_bus.db is not db:
            raise ValueError("same_file_bus must use the store's database")
        self.db = db
        self._bus = bus
        self._same_file_bus = same_file_bus
        self._lookup_ttl = lookup_ttl_seconds
        self.publishes_outbox_atomically = same_file_bus is not None
        self.operations: Counter[str] = Counter()
        db.add_schema(SCHEMA, _scope_report_ids)

    async def start(self) -> None:
        await self.db.start()

    async def close(self) -> None:
        await self.db.close()

    async def create_request(
        self,
        state: RequestState,
        report: BugReport,
        idempotency_key: str | None,
        outbox: Sequence[OutgoingMessage] = (),
        submitter: str = OPEN_SCOPE,
    ) -> tuple[RequestState, bool]:
        self.operations["sqlite|create_request"] += 1
        state_json = state.model_dump_json()
        report_json = canonical_json(report)
        print_ = digest(report_json)
        wanted = lookups(report, idempotency_key)

        def op(conn: sqlite3.Connection) -> str | IdConflict | None:
            """The known request's state JSON, a conflict, or None once inserted."""
            for kind, value in wanted:
                row = conn.execute(
                    f"SELECT request_id, fingerprint, state FROM requests"
                    f" WHERE lookup_scope = ? AND {_LOOKUP_COLUMNS[kind]} = ?",
                    (submitter, value),
                ).fetchone()
                if row is not None:
                    return str(row[2]) if row[1] == print_ else IdConflict(kind, value, row[0])
            conn.execute(
                "INSERT INTO requests (request_id, bug_report_id, idempotency_key, status,"
                " created_at, updated_at, state, report, lookup_scope, fingerprint)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    state.request_id,
                    state.bug_report_id,
                    idempotency_key,
                    state.status.value,
                    state.created_at.timestamp(),
                    state.updated_at.timestamp(),
                    state_json,
                    report_json,
                    submitter,
                    print_,
                ),
            )
            if staging is not None:
                staging.stage(conn, outbox)
            return None

        staging = self._same_file_bus
        known = await self.db.write(op)
        if isinstance(known, IdConflict):
            raise known
        if known is not None:
            return RequestState.model_validate_json(known), False
        if outbox:
            if staging is None:
                await self._bus.publish(outbox)
            else:
                staging.committed(outbox)
        return state, True

    async def put_report(
        self,
        request_id: str,
        report: BugReport,
        idempotency_key: str | None,
        submitter: str = OPEN_SCOPE,
    ) -> bool:
        self.operations["sqlite|put_report"] += 1
        report_json = canonical_json(report)

        def op(conn: sqlite3.Connection) -> bool:
            # A lookup another request holds stays its own: it was there first.
            taken = conn.execute(
                "SELECT 1 FROM requests WHERE lookup_scope = ? AND request_id != ?"
                " AND (bug_report_id = ? OR idempotency_key = ?)",
                (submitter, request_id, report.id, idempotency_key),
            ).fetchone()
            cursor = conn.execute(
                "UPDATE requests SET report = ?, idempotency_key = coalesce(idempotency_key, ?),"
                " lookup_scope = ?, fingerprint = ? WHERE request_id = ? AND report IS NULL",
                (
                    report_json,
                    idempotency_key,
                    None if taken else submitter,
                    digest(report_json),
                    request_id,
                ),
            )
            return cursor.rowcount > 0

        return await self.db.write(op)

    async def expire_lookups(self) -> int:
        self.operations["sqlite|expire_lookups"] += 1
        cutoff = time.time() - self._lookup_ttl
        terminal = tuple(s.value for s in RequestStatus if s.terminal)

        def op(conn: sqlite3.Connection) -> int:
            cursor = conn.execute(
                "UPDATE requests SET lookup_scope = NULL WHERE status IN (?, ?)"
                " AND updated_at < ? AND lookup_scope IS NOT NULL",
                (*terminal, cutoff),
            )
            return cursor.rowcount

        return await self.db.write(op)

    async def get(self, request_id: str) -> RequestState | None:
        self.operations["sqlite|get"] += 1
        rows = self.db.read("SELECT state FROM requests WHERE request_id = ?", (request_id,))
        return RequestState.model_validate_json(rows[0][0]) if rows else None

    async def get_report(self, request_id: str) -> BugReport | None:
        self.operations["sqlite|get_report"] += 1
        rows = self.db.read("SELECT report FROM requests WHERE request_id = ?", (request_id,))
        if not rows or rows[0][0] is None:
            return None
        return BugReport.model_validate_json(rows[0][0])

    async def apply(self, event: StateEvent) -> RequestState | None:
        self.operations["sqlite|apply"] += 1

        def op(conn: sqlite3.Connection) -> RequestState | None:
            row = conn.execute(
                "SELECT state FROM requests WHERE request_id = ?", (event.request_id,)
            ).fetchone()
            current = RequestState.model_validate_json(row[0]) if row else None
            new = fold(current, event)
            if new is not None:
                _upsert(conn, new)
            return new

        return await self.db.write(op)

    async def list_requests(
        self, statuses: Sequence[RequestStatus], limit: int, offset: int
    ) -> Page:
        self.operations["sqlite|list_requests"] += 1
        marks = ",".join("?" for _ in statuses)
        values = [s.value for s in statuses]
        (total,) = self.db.read(f"SELECT count(*) FROM requests WHERE status IN ({marks})", values)[
            0
        ]
        rows = self.db.read(
            f"SELECT state FROM requests WHERE status IN ({marks})"
            " ORDER BY created_at DESC, request_id LIMIT ? OFFSET ?",
            [*values, limit, offset],
        )
        return Page([RequestState.model_validate_json(r[0]) for r in rows], int(total))

    async def stuck(self, older_than: datetime, limit: int) -> list[RequestState]:
        self.operations["sqlite|stuck"] += 1
        # updated_at >= created_at, so the (status, created_at) index bounds the scan. Held
        # requests are left out in the query, so they never use up ``limit``.
        cutoff = older_than.timestamp()
        rows = self.db.read(
            "SELECT state FROM requests WHERE status IN ('submitted', 'processing')"
            f" AND created_at < ? AND updated_at < ? AND NOT {HELD} LIMIT ?",
            (cutoff, cutoff, limit),
        )
        return [RequestState.model_validate_json(r[0]) for r in rows]

    async def list_held(self, limit: int, offset: int) -> Page:
        """Oldest created first (ties by request id). The (status, created_at) index narrows
        the scan to processing requests; the JSON is looked at only for those."""
        self.operations["sqlite|list_held"] += 1
        (total,) = self.db.read(f"SELECT count(*) FROM requests WHERE {HELD}")[0]
        rows = self.db.read(
            f"SELECT state FROM requests WHERE {HELD}"
            " ORDER BY created_at, request_id LIMIT ? OFFSET ?",
            (limit, offset),
        )
        return Page([RequestState.model_validate_json(r[0]) for r in rows], int(total))

    async def put_review_example(self, request_id: str, example: Mapping[str, Any]) -> None:
        """A later example for the same request replaces the stored one in its place."""
        self.operations["sqlite|put_review_example"] += 1
        encoded = json.dumps(dict(example))

        def op(conn: sqlite3.Connection) -> None:
            conn.execute(
                "INSERT INTO review_examples (request_id, example, updated_at) VALUES (?, ?, ?)"
                " ON CONFLICT(request_id) DO UPDATE SET example = excluded.example,"
                " updated_at = excluded.updated_at",
                (request_id, encoded, time.time()),
            )

        await self.db.write(op)

    async def review_examples(self) -> list[dict[str, Any]]:
        self.operations["sqlite|review_examples"] += 1
        rows = self.db.read("SELECT example FROM review_examples ORDER BY seq")
        return [json.loads(r[0]) for r in rows]

    async def recent_reports(self, limit: int) -> list[tuple[RequestState, BugReport]]:
        self.operations["sqlite|recent_reports"] += 1
        rows = self.db.read(
            "SELECT state, report FROM requests WHERE report IS NOT NULL"
            " ORDER BY created_at DESC LIMIT ?",
            (limit,),
        )
        return [
            (RequestState.model_validate_json(r[0]), BugReport.model_validate_json(r[1]))
            for r in rows
        ]

    async def put_embedding(self, request_id: str, vector: bytes) -> None:
        self.operations["sqlite|put_embedding"] += 1

        def op(conn: sqlite3.Connection) -> None:
            conn.execute(
                "INSERT OR REPLACE INTO embeddings (request_id, vector) VALUES (?, ?)",
                (request_id, vector),
            )

        await self.db.write(op)

    async def embeddings(self, request_ids: Sequence[str]) -> dict[str, bytes]:
        self.operations["sqlite|embeddings"] += 1
        found: dict[str, bytes] = {}
        ids = list(request_ids)
        for start in range(0, len(ids), 500):  # SQLite's bound-parameter limit
            chunk = ids[start : start + 500]
            marks = ",".join("?" * len(chunk))
            rows = self.db.read(
                f"SELECT request_id, vector FROM embeddings WHERE request_id IN ({marks})",
                chunk,
            )
            found.update((row[0], bytes(row[1])) for row in rows)
        return found

    async def stats(
        self, since: datetime, sample_limit: int = 100_000, with_steps: bool = True
    ) -> RequestStats:
        self.operations["sqlite|stats"] += 1
        cutoff = since.timestamp()
        totals = self.db.read(
            "SELECT status, count(*) FROM requests WHERE created_at >= ? GROUP BY status",
            (cutoff,),
        )
        counts = {row[0]: int(row[1]) for row in totals}
        stats = RequestStats(
            total=sum(counts.values()),
            completed=counts.get(RequestStatus.COMPLETED.value, 0),
            failed=counts.get(RequestStatus.FAILED.value, 0),
        )
        stats.processing_seconds = [
            float(r[0])
            for r in self.db.read(
                "SELECT processing_seconds FROM requests WHERE created_at >= ?"
                " AND status = 'completed' AND processing_seconds IS NOT NULL"
                " ORDER BY created_at DESC LIMIT ?",
                (cutoff, sample_limit),
            )
        ]
        for step in AGENT_STEPS if with_steps else ():
            path = f"$.progress.{step.value}"
            rows = self.db.read(
                f"SELECT json_extract(state, '{path}.status'),"
                f" json_extract(state, '{path}.duration_seconds') FROM requests"
                f" WHERE created_at >= ? AND json_extract(state, '{path}') IS NOT NULL"
                " ORDER BY created_at DESC LIMIT ?",
                (cutoff, sample_limit),
            )
            stats.step_seconds[step.value] = [
                float(r[1]) for r in rows if r[0] == "completed" and r[1] is not None
            ]
            stats.step_failures[step.value] = sum(1 for r in rows if r[0] == "failed")
        return stats

    async def get_filing(self, request_id: str) -> FilingRecord | None:
        self.operations["sqlite|get_filing"] += 1
        rows = self.db.read(_FILING, (request_id,))
        return _filing(request_id, rows[0]) if rows else None

    async def put_filing(self, record: FilingRecord) -> None:
        self.operations["sqlite|put_filing"] += 1
        await self.db.write(lambda conn: _put_filing(conn, record, time.time()))

    async def claim_filing(
        self, request_id: str, owner: str, lease_seconds: float, attempt: bool
    ) -> FilingClaim:
        self.operations["sqlite|claim_filing"] += 1

        def op(conn: sqlite3.Connection) -> FilingClaim:
            now = time.time()
            row = conn.execute(_FILING, (request_id,)).fetchone()
            previous = _filing(request_id, row) if row else None
            if previous is not None and (
                previous.state == "filed"
                or (previous.owner not in (None, owner) and (previous.lease_until or 0) > now)
            ):
                return FilingClaim(False, previous, now)
            claimed = FilingRecord(
                request_id,
                "pending",
                None,
                owner=owner,
                lease_until=now + lease_seconds,
                attempted_at=now if attempt else _earlier(previous, "attempted_at"),
                pending_since=_earlier(previous, "pending_since") or now,
            )
            _put_filing(conn, claimed, now)
            return FilingClaim(True, previous, now)

        return await self.db.write(op)

    async def put_heartbeats(self, beats: Sequence[Heartbeat], ttl_seconds: float) -> None:
        self.operations["sqlite|put_heartbeats"] += 1

        def op(conn: sqlite3.Connection) -> None:
            now = time.time()
            conn.execute("DELETE FROM agent_heartbeats WHERE expires_at <= ?", (now,))
            conn.executemany(
                "INSERT OR REPLACE INTO agent_heartbeats (agent, instance, beat, expires_at)"
                " VALUES (?, ?, ?, ?)",
                [(b.agent, b.instance, b.to_json(), now + ttl_seconds) for b in beats],
            )

        await self.db.write(op)

    async def heartbeats(self) -> list[Heartbeat]:
        self.operations["sqlite|heartbeats"] += 1
        rows = self.db.read(
            "SELECT beat FROM agent_heartbeats WHERE expires_at > ?", (time.time(),)
        )
        return [Heartbeat.from_json(r[0]) for r in rows]

    async def record_daily(self, day: date, figures: Mapping[str, float]) -> None:
        self.operations["sqlite|record_daily"] += 1
        rows = [(day.isoformat(), name, float(value)) for name, value in figures.items()]

        def op(conn: sqlite3.Connection) -> None:
            conn.executemany(
                "INSERT INTO daily_stats (day, name, value) VALUES (?, ?, ?)"
                " ON CONFLICT(day, name) DO UPDATE SET value = value + excluded.value",
                rows,
            )

        if rows:
            await self.db.write(op)

    async def daily(self, day: date) -> dict[str, float] | None:
        self.operations["sqlite|daily"] += 1
        rows = self.db.read("SELECT name, value FROM daily_stats WHERE day = ?", (day.isoformat(),))
        return {str(r[0]): float(r[1]) for r in rows} or None

    async def ping(self) -> dict[str, Any]:
        return self.db.ping()


def _scope_report_ids(conn: sqlite3.Connection) -> None:
    """Bring a file from before ids were scoped up to date, then index ``requests``: the
    table loses its unique report id (rebuilt: SQLite cannot drop a constraint) and gains
    the lookup columns; each request's id and key become lookups of the open scope, the
    only one there was."""
    columns = {row[1] for row in conn.execute("PRAGMA table_info(requests)")}
    if "lookup_scope" not in columns:
        conn.create_function("report_fingerprint", 1, _fingerprint_of_stored)
        old = (
            "request_id, bug_report_id, idempotency_key, status, created_at, updated_at,"
            " processing_seconds, state, report"
        )
        conn.execute("BEGIN IMMEDIATE")
        try:
            conn.execute("DROP INDEX IF EXISTS requests_by_idempotency_key")
            conn.execute("ALTER TABLE requests RENAME TO requests_with_global_ids")
            conn.execute(REQUESTS)
            conn.execute(
                f"INSERT INTO requests ({old}, lookup_scope, fingerprint) SELECT {old},"
                " CASE WHEN report IS NULL THEN NULL ELSE ? END, report_fingerprint(report)"
                " FROM requests_with_global_ids",
                (OPEN_SCOPE,),
            )
            conn.execute("DROP TABLE requests_with_global_ids")
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
    conn.executescript(REQUEST_INDEXES)


def _fingerprint_of_stored(report_json: str | None) -> str | None:
    # Validated again: the report as this version's model reads it, so it prints alike.
    return None if report_json is None else fingerprint(BugReport.model_validate_json(report_json))


_FILING = (
    "SELECT f.state, f.issue, l.owner, l.lease_until, l.attempted_at, l.pending_since"
    " FROM filings f LEFT JOIN filing_leases l USING (request_id) WHERE f.request_id = ?"
)


def _filing(request_id: str, row: sqlite3.Row) -> FilingRecord:
    state, issue, owner, lease_until, attempted_at, pending_since = tuple(row)
    return FilingRecord(
        request_id,
        state,
        FiledIssue.model_validate_json(issue) if issue else None,
        owner=owner,
        lease_until=lease_until,
        attempted_at=attempted_at,
        pending_since=pending_since,
    )


def _earlier(previous: FilingRecord | None, time_field: str) -> float | None:
    value = getattr(previous, time_field) if previous is not None else None
    return float(value) if value is not None else None


def _put_filing(conn: sqlite3.Connection, record: FilingRecord, now: float) -> None:
    issue = record.issue.model_dump_json() if record.issue else None
    conn.execute(
        "INSERT INTO filings (request_id, state, issue, updated_at) VALUES (?, ?, ?, ?)"
        " ON CONFLICT(request_id) DO UPDATE SET state = excluded.state,"
        " issue = excluded.issue, updated_at = excluded.updated_at",
        (record.request_id, record.state, issue, now),
    )
    if record.state == "filed":
        conn.execute("DELETE FROM filing_leases WHERE request_id = ?", (record.request_id,))
        return
    conn.execute(
        "INSERT OR REPLACE INTO filing_leases"
        " (request_id, owner, lease_until, attempted_at, pending_since) VALUES (?, ?, ?, ?, ?)",
        (
            record.request_id,
            record.owner,
            record.lease_until,
            record.attempted_at,
            record.pending_since,
        ),
    )


def _upsert(conn: sqlite3.Connection, state: RequestState) -> None:
    conn.execute(
        "INSERT INTO requests (request_id, bug_report_id, status, created_at, updated_at,"
        " processing_seconds, state) VALUES (?, ?, ?, ?, ?, ?, ?)"
        " ON CONFLICT(request_id) DO UPDATE SET status = excluded.status,"
        " updated_at = excluded.updated_at, processing_seconds = excluded.processing_seconds,"
        " state = excluded.state",
        (
            state.request_id,
            state.bug_report_id,
            state.status.value,
            state.created_at.timestamp(),
            state.updated_at.timestamp(),
            state.processing_time_seconds,
            state.model_dump_json(),
        ),
    )
