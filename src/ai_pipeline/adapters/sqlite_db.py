"""One SQLite file (WAL) shared by the embedded bus, state store and local tracker.

Writes are group-committed: every write submitted during one turn of the event loop joins
one transaction, so a burst of N requests costs a handful of commits, not N.

Where a commit waits for the disk (``synchronous=FULL``/``EXTRA``), the transaction runs on a
dedicated thread so the event loop keeps serving. With ``NORMAL`` (the default: in WAL mode
a commit survives a killed process without an fsync) it runs on the loop itself: a batch
takes microseconds, and a thread hop would cost more than the work. Checkpoints, which do
fsync, never run inside a commit: a background thread folds the WAL back periodically.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")
WriteOp = Callable[[sqlite3.Connection], Any]
Outcome = tuple[bool, Any]

SYNCHRONOUS_MODES = ("OFF", "NORMAL", "FULL", "EXTRA")
CHECKPOINT_EVERY_SECONDS = 1.0
PAGE_SIZE = 1024
# WAL frames past which a checkpoint rewinds the log: when the service is quiet (about
# 32 MiB of log), or whatever the load once it holds about 256 MiB (reads slow down as
# the log grows, and disk is finite).
WAL_REWIND_QUIET_FRAMES = 32 * 1024 * 1024 // PAGE_SIZE
WAL_REWIND_ALWAYS_FRAMES = 256 * 1024 * 1024 // PAGE_SIZE


def path_from_url(url: str) -> Path:
    """``sqlite:///relative.db`` or ``sqlite:////abs/path.db`` → a path."""
    if not url.startswith("sqlite:///"):
        raise ValueError(f"not a sqlite URL: {url!r}")
    return Path(url.removeprefix("sqlite:///"))


class SqliteDatabase:
    def __init__(
        self,
        path: Path,
        synchronous: str = "NORMAL",
        busy_timeout_ms: int = 10_000,
        quiet: Callable[[], bool] = lambda: True,
        checkpoint_every: float = CHECKPOINT_EVERY_SECONDS,
        rewind_frames: tuple[int, int] = (WAL_REWIND_QUIET_FRAMES, WAL_REWIND_ALWAYS_FRAMES),
    ):
        """``quiet``: whether writers may be paused now (a rewind of the WAL pauses them)."""
        if synchronous.upper() not in SYNCHRONOUS_MODES:
            raise ValueError(f"synchronous must be one of {SYNCHRONOUS_MODES}")
        self.path = path
        self._synchronous = synchronous.upper()
        self._commit_on_thread = self._synchronous in ("FULL", "EXTRA")
        self._busy_timeout_ms = busy_timeout_ms
        self._quiet = quiet
        self._checkpoint_every = checkpoint_every
        self._rewind_quiet, self._rewind_always = rewind_frames
        self._writer: sqlite3.Connection | None = None
        self._reader: sqlite3.Connection | None = None
        self._executor: ThreadPoolExecutor | None = None
        self._pending: list[tuple[WriteOp, asyncio.Future[Any]]] = []
        self._flush_scheduled = False
        self._in_flight: asyncio.Task[None] | None = None
        self._checkpointer: asyncio.Task[None] | None = None
        self._schemas: list[str] = []
        self._migrations: list[Callable[[sqlite3.Connection], None]] = []
        self._read_lock = threading.Lock()
        self.commits = 0
        self.writes = 0
        self.wal_restarts = 0
        self._restarting = False

    def add_schema(
        self, ddl: str, migrate: Callable[[sqlite3.Connection], None] | None = None
    ) -> None:
        """``ddl`` runs at every start (make it idempotent); then ``migrate``, which brings an
        older file's tables to what ``ddl`` describes (and does nothing once it has)."""
        self._schemas.append(ddl)
        if migrate is not None:
            self._migrations.append(migrate)

    @property
    def started(self) -> bool:
        return self._writer is not None

    async def start(self) -> None:
        if self._writer is not None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._writer = self._connect()
        # Small pages: a commit rewrites every page it touches, and most touch only the
        # tail of an index or a log; 1 KiB pages cut the WAL written per report by ~40 %.
        # (Takes effect when the file is created.)
        self._writer.execute(f"PRAGMA page_size={PAGE_SIZE}")
        self._writer.execute("PRAGMA journal_mode=WAL")
        self._writer.execute("PRAGMA wal_autocheckpoint=0")
        for ddl in self._schemas:
            self._writer.executescript(ddl)
        for migrate in self._migrations:
            migrate(self._writer)
        self._reader = self._connect()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sqlite")
        self._checkpointer = asyncio.create_task(self._checkpoint_forever(), name="checkpoint")

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        conn.row_factory = sqlite3.Row
        conn.execute(f"PRAGMA busy_timeout={self._busy_timeout_ms}")
        conn.execute(f"PRAGMA synchronous={self._synchronous}")
        return conn

    async def close(self) -> None:
        if self._writer is None:
            return
        if self._checkpointer is not None:
            self._checkpointer.cancel()
            await asyncio.gather(self._checkpointer, return_exceptions=True)
        while self._pending or self._in_flight is not None:
            await self._flush()
        assert self._executor is not None
        self._executor.shutdown(wait=True)
        for conn in (self._writer, self._reader):
            if conn is not None:
                conn.close()
        self._writer = self._reader = None

    async def write(self, op: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``op`` inside the next group commit; returns once it is committed."""
        if self._writer is None:
            raise RuntimeError("database not started")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        self._pending.append((op, future))
        if not self._flush_scheduled:
            self._flush_scheduled = True
            loop.call_soon(self._schedule_flush)
        return await future

    def read(self, sql: str, params: Sequence[Any] = ()) -> list[sqlite3.Row]:
        if self._reader is None:
            raise RuntimeError("database not started")
        with self._read_lock:
            return self._reader.execute(sql, params).fetchall()

    def ping(self) -> dict[str, Any]:
        started = time.perf_counter()
        self.read("SELECT 1")
        return {
            "status": "healthy",
            "backend": "sqlite",
            "path": str(self.path),
            "latency_ms": round((time.perf_counter() - started) * 1000, 3),
        }

    def _schedule_flush(self) -> None:
        if self._restarting:
            # A RESTART checkpoint holds the write lock: wait without blocking the loop.
            asyncio.get_running_loop().call_later(0.001, self._schedule_flush)
            return
        self._flush_scheduled = False
        if not self._commit_on_thread:
            self._settle(*self._take_batch_and_run())
        elif self._in_flight is None:
            self._in_flight = asyncio.ensure_future(self._flush_on_thread())

    async def _flush(self) -> None:
        if self._in_flight is not None:
            await self._in_flight
        elif self._pending:
            self._schedule_flush()
            if self._in_flight is not None:
                await self._in_flight

    async def _flush_on_thread(self) -> None:
        # Writes arriving while a commit waits for the disk form the next batch.
        loop = asyncio.get_running_loop()
        try:
            while self._pending:
                batch, self._pending = self._pending, []
                assert self._executor is not None
                outcomes = await loop.run_in_executor(
                    self._executor, self._run, [op for op, _ in batch]
                )
                self._settle(batch, outcomes)
        finally:
            self._in_flight = None

    def _take_batch_and_run(
        self,
    ) -> tuple[list[tuple[WriteOp, asyncio.Future[Any]]], list[Outcome]]:
        batch, self._pending = self._pending, []
        return batch, self._run([op for op, _ in batch])

    def _settle(
        self, batch: list[tuple[WriteOp, asyncio.Future[Any]]], outcomes: list[Outcome]
    ) -> None:
        self.commits += 1
        self.writes += len(batch)
        for (_, future), (ok, value) in zip(batch, outcomes, strict=True):
            if future.done():
                continue
            if ok:
                future.set_result(value)
            else:
                future.set_exception(value)

    def _run(self, ops: list[WriteOp]) -> list[Outcome]:
        """All ops in one transaction; if one fails, each alone so the rest still commit."""
        try:
            return [(True, value) for value in self._transaction(ops)]
        except Exception:
            if len(ops) == 1:
                return [self._alone(ops[0])]
            return [self._alone(op) for op in ops]

    def _alone(self, op: WriteOp) -> Outcome:
        try:
            return True, self._transaction([op])[0]
        except Exception as exc:
            return False, exc

    def _transaction(self, ops: list[WriteOp]) -> list[Any]:
        conn = self._writer
        assert conn is not None
        conn.execute("BEGIN IMMEDIATE")
        try:
            values = [op(conn) for op in ops]
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        return values

    async def _checkpoint_forever(self) -> None:
        # Checkpoints run on their own connection, off the loop. PASSIVE never blocks the
        # writer, but under a steady stream of commits it never completes, and the WAL
        # (which rewinds only after a complete checkpoint) grows, slowing reads. A
        # TRUNCATE rewinds it and gives the disk back, but holds writers for tens of
        # milliseconds: so it waits for a quiet moment, unless the log grew huge.
        # Meanwhile writes queue up instead of blocking the event loop on the lock.
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(self._checkpoint_every)
            assert self._executor is not None
            frames = await loop.run_in_executor(self._executor, self._checkpoint, "PASSIVE")
            quiet_enough = frames > self._rewind_quiet and self._quiet()
            if quiet_enough or frames > self._rewind_always:
                # Quiet: also give the disk back. Under load: the cheaper RESTART.
                mode = "TRUNCATE" if quiet_enough else "RESTART"
                self._restarting = True
                try:
                    await loop.run_in_executor(self._executor, self._checkpoint, mode)
                    self.wal_restarts += 1
                finally:
                    self._restarting = False

    def _checkpoint(self, mode: str) -> int:
        """Run a checkpoint; the number of frames in the WAL."""
        conn = self._connect()
        try:
            _busy, frames, _done = conn.execute(f"PRAGMA wal_checkpoint({mode})").fetchone()
            return int(frames)
        finally:
            conn.close()
