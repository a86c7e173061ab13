"""The daily report's stored counters on both state stores, and `ai-pipeline report daily`
reading them: the same contract on SQLite and on a real Redis."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from redis.asyncio import Redis

from ai_pipeline.adapters.bus.sqlite import SqliteBus
from ai_pipeline.adapters.sqlite_db import SqliteDatabase
from ai_pipeline.adapters.state.redis import DAILY_TTL_SECONDS, RedisStateStore
from ai_pipeline.adapters.state.sqlite import SqliteStateStore
from ai_pipeline.ports import StateStore

pytestmark = pytest.mark.anyio

DAY = date(2026, 3, 14)


class Backend:
    """A store, and the environment under which the CLI reaches the same data."""

    def __init__(self, store: StateStore, env: dict[str, str]):
        self.store = store
        self.env = env


@pytest.fixture(params=["sqlite", pytest.param("redis", marks=pytest.mark.services)])
async def backend(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Backend]:
    db_path = tmp_path / "pipeline.db"
    db = SqliteDatabase(db_path)
    bus = SqliteBus(db, {"t": 1})
    env = {"AI_PIPELINE_BUS": f"sqlite:///{db_path}", "AI_PIPELINE_STATE": f"sqlite:///{db_path}"}
    store: StateStore
    if request.param == "sqlite":
        store = SqliteStateStore(db, bus)
    else:
        redis_server: Any = request.getfixturevalue("redis_server")
        prefix = f"test-{uuid.uuid4().hex[:12]}:"
        store = RedisStateStore(redis_server.url, bus=bus, key_prefix=prefix)
        env |= {"AI_PIPELINE_STATE": redis_server.url, "AI_PIPELINE_REDIS_KEY_PREFIX": prefix}
    await bus.start()
    await store.start()
    try:
        yield Backend(store, env)
    finally:
        await store.close()
        await bus.close()


async def test_increments_add_up_per_day_and_an_unrecorded_day_is_none(backend: Backend) -> None:
    store = backend.store
    await store.record_daily(DAY, {"completed": 3, "processing_seconds_sum": 0.25})
    await store.record_daily(DAY, {"completed": 2, "failed": 1, "processing_seconds_sum": 0.5})
    await store.record_daily(date(2026, 3, 15), {"completed": 7})
    assert await store.daily(DAY) == pytest.approx(
        {"completed": 5.0, "failed": 1.0, "processing_seconds_sum": 0.75}
    )
    assert await store.daily(date(2026, 3, 15)) == {"completed": 7.0}
    assert await store.daily(date(2026, 3, 13)) is None


async def test_concurrent_increments_are_not_lost(backend: Backend) -> None:
    import anyio

    async with anyio.create_task_group() as tg:
        for _ in range(20):
            tg.start_soon(backend.store.record_daily, DAY, {"accepted": 1, "bus_messages": 3})
    assert await backend.store.daily(DAY) == {"accepted": 20.0, "bus_messages": 60.0}


def run_report(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("AI_PIPELINE_")}
    return subprocess.run(
        [sys.executable, "-m", "ai_pipeline.cli", "report", "daily", *args],
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


async def test_report_daily_prints_the_days_figures_as_json(backend: Backend) -> None:
    await backend.store.record_daily(
        DAY, {"accepted": 10, "completed": 9, "failed": 1, "bus_messages": 70, "llm_calls": 0}
    )
    result = run_report(backend.env, "--date", DAY.isoformat(), "--json")
    assert result.returncode == 0, result.stderr
    figures = json.loads(result.stdout)
    assert figures["date"] == "2026-03-14"
    assert figures["reports_accepted"] == 10
    assert figures["reports_processed"] == 10
    assert figures["error_rate"] == pytest.approx(0.1)
    assert figures["bus_messages"] == 70
    assert figures["llm_calls"] == 0


async def test_report_daily_fails_for_a_day_without_figures(backend: Backend) -> None:
    await backend.store.record_daily(DAY, {"accepted": 1})
    result = run_report(backend.env, "--date", "2026-03-13", "--json")
    assert result.returncode == 1
    assert "no daily figures recorded for 2026-03-13" in result.stderr
    assert result.stdout == ""


@pytest.mark.services
async def test_redis_keeps_a_days_counters_in_one_prefixed_hash_for_400_days(
    redis_server: Any, tmp_path: Path
) -> None:
    prefix = f"test-{uuid.uuid4().hex[:12]}:"
    db = SqliteDatabase(tmp_path / "bus.db")
    store = RedisStateStore(redis_server.url, bus=SqliteBus(db, {"t": 1}), key_prefix=prefix)
    raw = Redis.from_url(redis_server.url, decode_responses=True)
    await store.start()
    try:
        await store.record_daily(DAY, {"completed": 2, "processing_seconds_sum": 0.5})
        key = f"{prefix}daily:2026-03-14"
        assert await raw.hgetall(key) == {"completed": "2", "processing_seconds_sum": "0.5"}
        ttl = await raw.ttl(key)
        assert DAILY_TTL_SECONDS - 60 < ttl <= DAILY_TTL_SECONDS
    finally:
        await store.close()
        await raw.aclose()
