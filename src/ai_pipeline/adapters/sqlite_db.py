"""One SQLite file (WAL) shared by the embedded bus, state store and local tracker.

Writes are group-committed: every write submitted while a transaction is in flight joins
the next one, so a burst of N requests costs a handful of commits, not N. The write
transaction runs on one dedicated thread (SQLite allows one writer anyway); reads run on
the caller's thread against a second connection, which WAL lets proceed during a write.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")
WriteOp = Callable[[sqlite3.Connection], Any]

SYNCHRONOUS_MODES = ("OFF", "NORMAL", "FULL", "EXTRA")


def path_from_url(url: str) -> Path:
    """``sqlite:///relative.db`` or ``sqlite:////abs/path.db`` → a path."""
    if not url.startswith("sqlite:///"):
        raise ValueError(f"not a sqlite URL: {url!r}")
    return Path(url.removeprefix("sqlite:///"))


class SqliteDatabase:
    def __init__(self, path: Path, synchronous: str = "NORMAL", busy_timeout_ms: int = 10_000):
        if synchronous.upper() not in SYNCHRONOUS_MODES:
            raise ValueError(f"synchronous must be one of {SYNCHRONOUS_MODES}")
        self.path = path
        self._synchronous = synchronous.upper()
        self._busy_timeout_ms = busy_timeout_ms
        self._writer: sqlite3.Connection | None = None
        self._reader: sqlite3.Connection | None = None
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sqlite-writer")
        self._pending: list[tuple[WriteOp, asyncio.Future[Any]]] = []
        self._wake: asyncio.Event | None = None
        self._flusher: asyncio.Task[None] | None = None
        self._schemas: list[str] = []
        self._after_commit: list[Callable[[], None]] = []
        self._read_lock = threading.Lock()
        self.commits = 0

    def add_schema(self, ddl: str) -> None:
        self._schemas.append(ddl)

    def on_commit(self, callback: Callable[[], None]) -> None:
        """Run ``callback`` on the event loop after every committed write batch."""
        self._after_commit.append(callback)

    @property
    def started(self) -> bool:
        return self._writer is not None

    async def start(self) -> None:
        if self._writer is not None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._writer = self._connect()
        self._writer.execute("PRAGMA journal_mode=WAL")
        for ddl in self._schemas:
            self._writer.executescript(ddl)
        self._reader = self._connect()
        self._wake = asyncio.Event()
        self._flusher = asyncio.create_task(self._flush_forever(), name="sqlite-flusher")

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        conn.row_factory = sqlite3.Row
        conn.execute(f"PRAGMA busy_timeout={self._busy_timeout_ms}")
        conn.execute(f"PRAGMA synchronous={self._synchronous}")
        return conn

    async def close(self) -> None:
        if self._flusher is not None:
            self._flusher.cancel()
            await asyncio.gather(self._flusher, return_exceptions=True)
            self._flusher = None
        if self._pending:
            await self._flush_once()
        self._executor.shutdown(wait=True)
        for conn in (self._writer, self._reader):
            if conn is not None:
                conn.close()
        self._writer = self._reader = None

    async def write(self, op: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``op`` inside the next group commit; returns once it is durable."""
        if self._wake is None:
            raise RuntimeError("database not started")
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._pending.append((op, future))
        self._wake.set()
        return await future

    def read(self, sql: str, params: Sequence[Any] = ()) -> list[sqlite3.Row]:
        if self._reader is None:
            raise RuntimeError("database not started")
        with self._read_lock:
            return self._reader.execute(sql, params).fetchall()

    async def _flush_forever(self) -> None:
        assert self._wake is not None
        while True:
            await self._wake.wait()
            self._wake.clear()
            await self._flush_once()

    async def _flush_once(self) -> None:
        batch, self._pending = self._pending, []
        if not batch:
            return
        loop = asyncio.get_running_loop()
        try:
            outcomes = await loop.run_in_executor(
                self._executor, self._run_batch, [op for op, _ in batch]
            )
        except BaseException as exc:  # the commit itself failed: nothing in the batch stuck
            for _, future in batch:
                if not future.done():
                    future.set_exception(exc if isinstance(exc, Exception) else RuntimeError())
            if not isinstance(exc, Exception):
                raise
            return
        self.commits += 1
        for (_, future), (ok, value) in zip(batch, outcomes, strict=True):
            if future.done():
                continue
            if ok:
                future.set_result(value)
            else:
                future.set_exception(value)
        for callback in self._after_commit:
            callback()

    def _run_batch(self, ops: list[WriteOp]) -> list[tuple[bool, Any]]:
        conn = self._writer
        assert conn is not None
        outcomes: list[tuple[bool, Any]] = []
        conn.execute("BEGIN IMMEDIATE")
        try:
            for op in ops:
                # A savepoint per op: one failing op must not undo its neighbours' work.
                conn.execute("SAVEPOINT op")
                try:
                    outcomes.append((True, op(conn)))
                    conn.execute("RELEASE op")
                except Exception as exc:
                    conn.execute("ROLLBACK TO op")
                    conn.execute("RELEASE op")
                    outcomes.append((False, exc))
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        return outcomes
