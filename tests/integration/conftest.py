"""Fixtures of the integration tier shared by several modules."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from ai_pipeline.adapters.bus.sqlite import SqliteBus
from ai_pipeline.adapters.sqlite_db import SqliteDatabase
from ai_pipeline.adapters.state.redis import RedisStateStore
from ai_pipeline.adapters.state.sqlite import SqliteStateStore
from ai_pipeline.ports import StateStore


@pytest.fixture(params=["sqlite", pytest.param("redis", marks=pytest.mark.services)])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[StateStore]:
    """Each state store in turn, SQLite and a real Redis: the contract both keep."""
    db = SqliteDatabase(tmp_path / "pipeline.db")
    bus = SqliteBus(db, {"t": 1})
    store: StateStore
    if request.param == "sqlite":
        store = SqliteStateStore(db, bus, same_file_bus=bus)
    else:
        redis_server: Any = request.getfixturevalue("redis_server")
        prefix = f"test-{uuid.uuid4().hex[:12]}:"  # tests share one redis-server
        store = RedisStateStore(redis_server.url, bus=bus, key_prefix=prefix)
    await bus.start()
    await store.start()
    try:
        yield store
    finally:
        await store.close()
        await bus.close()
