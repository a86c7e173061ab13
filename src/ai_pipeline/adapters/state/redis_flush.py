"""Emptying the Redis state store for the runbook's emergency procedure (``ai-pipeline state
flush``), sparing what the status-updates log cannot give back: the API keys (emptied of
them, the store would open an ``auto`` API to anyone and shut a ``required`` one), and the
report-id lookups (they answer resubmissions for 30 days; the log holds a week).

SCAN and UNLINK, never FLUSHDB or KEYS: Redis keeps serving while it runs, other tenants'
prefixes are untouched, and the spared keys never disappear even for a moment.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from fnmatch import fnmatchcase

from redis.asyncio import Redis

from ai_pipeline.adapters.keys.redis import NAMES as KEY_STORE_NAMES
from ai_pipeline.adapters.redis_client import unavailable
from ai_pipeline.adapters.state.redis import LOOKUP_NAMES

BATCH = 1000
SPARED = (*KEY_STORE_NAMES, *LOOKUP_NAMES)


@dataclass(frozen=True)
class Flushed:
    removed: int
    kept: int


def spared(name: str, prefix: str, patterns: Sequence[str] = SPARED) -> bool:
    """Whether ``name`` (a full Redis key) is one a flush keeps."""
    if not name.startswith(prefix):
        return False
    rest = name[len(prefix) :]
    return any(fnmatchcase(rest, pattern) for pattern in patterns)


@unavailable
async def flush_state(redis: Redis, prefix: str) -> Flushed:
    """Remove every key under ``prefix`` (the whole database when it is empty) but the
    spared ones."""
    removed = kept = 0
    batch: list[str] = []
    async for raw in redis.scan_iter(match=f"{_glob_escape(prefix)}*", count=BATCH):
        name = raw if isinstance(raw, str) else raw.decode()
        if spared(name, prefix):
            kept += 1
            continue
        batch.append(name)
        if len(batch) >= BATCH:
            removed += int(await redis.unlink(*batch))
            batch.clear()
    if batch:
        removed += int(await redis.unlink(*batch))
    return Flushed(removed, kept)


def _glob_escape(text: str) -> str:
    """``text`` matched literally by a Redis glob (SCAN MATCH)."""
    return "".join(f"\\{c}" if c in "*?[]\\" else c for c in text)
