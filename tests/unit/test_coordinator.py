"""The coordinator fails what is stuck, not what is merely queued."""

from __future__ import annotations

import time
from datetime import timedelta
from pathlib import Path

import pytest

from ai_pipeline.adapters.bus.sqlite import SqliteBus
from ai_pipeline.adapters.sqlite_db import SqliteDatabase
from ai_pipeline.adapters.state.sqlite import SqliteStateStore
from ai_pipeline.agents.coordinator import Coordinator
from ai_pipeline.domain.events import Step, decode, utcnow
from ai_pipeline.domain.request_state import new_request
from ai_pipeline.observability.metrics import Metrics
from ai_pipeline.settings import Settings
from tests.factories import report

pytestmark = pytest.mark.anyio


async def setup(tmp_path: Path) -> tuple[SqliteBus, SqliteStateStore, Coordinator]:
    db = SqliteDatabase(tmp_path / "c.db")
    bus = SqliteBus(db, Settings(_env_file=None).partitions())  # type: ignore[call-arg]
    store = SqliteStateStore(db, bus, same_file_bus=bus)
    await bus.start()
    await store.start()
    coordinator = Coordinator(store, bus, Metrics(), step_timeout=60)
    coordinator._since = time.monotonic() - 120  # up for longer than a timeout
    r = report()
    await store.create_request(new_request("old", r.id, utcnow() - timedelta(minutes=5)), r, None)
    return bus, store, coordinator


async def test_a_request_without_progress_fails_with_the_step_and_the_reason(
    tmp_path: Path,
) -> None:
    bus, store, coordinator = await setup(tmp_path)
    assert await coordinator.fail_stuck() == 1
    (message,) = await bus.consumer("g", ["status-updates"]).fetch(10, 0.1)
    event = decode(message.value)
    assert event.kind == "step_changed" and event.step is Step.TRIAGE
    assert "timed out" in (event.error or "")
    await store.close()


async def test_a_request_queued_behind_a_moving_backlog_is_not_failed(tmp_path: Path) -> None:
    _, store, coordinator = await setup(tmp_path)
    assert await coordinator.fail_stuck(moving={Step.TRIAGE}) == 0
    await store.close()


async def test_nothing_is_judged_before_the_coordinator_was_up_for_a_timeout(
    tmp_path: Path,
) -> None:
    _, store, coordinator = await setup(tmp_path)
    coordinator._since = time.monotonic()
    assert await coordinator.fail_stuck() == 0
    await store.close()
