"""The daily report's pure arithmetic, and the recorder that feeds the stored counters."""

from __future__ import annotations

from collections import Counter
from datetime import date
from pathlib import Path

import pytest

from ai_pipeline.adapters.bus.sqlite import SqliteBus
from ai_pipeline.adapters.sqlite_db import SqliteDatabase
from ai_pipeline.adapters.state.sqlite import SqliteStateStore
from ai_pipeline.observability.metrics import LATENCY_BUCKETS, Metrics
from ai_pipeline.reporting import (
    DailyRecorder,
    DailyReport,
    bucket_field,
    deltas,
    histogram_quantile,
    snapshot,
)

DAY = date(2026, 3, 14)


def test_quantile_interpolates_within_its_bucket_as_prometheus_does() -> None:
    cumulative = {0.1: 50.0, 0.5: 90.0, 1.0: 100.0}
    assert histogram_quantile(0.95, cumulative, 100) == pytest.approx(0.75)
    assert histogram_quantile(0.5, cumulative, 100) == pytest.approx(0.1)
    assert histogram_quantile(0.25, cumulative, 100) == pytest.approx(0.05)


def test_quantile_beyond_the_last_bound_reports_that_bound() -> None:
    assert histogram_quantile(0.95, {1.0: 5.0, 2.0: 5.0}, 10) == 2.0


def test_quantile_without_observations_is_none() -> None:
    assert histogram_quantile(0.95, {1.0: 0.0}, 0) is None


def test_deltas_leave_out_what_did_not_change_and_restart_from_zero_after_a_reset() -> None:
    assert deltas({"a": 5, "b": 2, "c": 7}, {"a": 8, "b": 2, "c": 3, "d": 1}) == {
        "a": 3,
        "c": 3,
        "d": 1,
    }


def test_snapshot_reads_every_figure_from_the_process_metrics() -> None:
    m = Metrics()
    m.requests_total.inc(4)
    m.requests_completed_total.inc(3)
    m.requests_failed_total.inc(1)
    for seconds in (0.2, 0.4, 0.4):
        m.processing_time.observe(seconds)
    m.http_latency.labels("POST", "/api/v1/bug-reports").observe(0.003)
    m.http_latency.labels("GET", "/api/v1/health").observe(0.03)
    m.http_requests.labels("POST", "/api/v1/bug-reports", "201").inc()
    m.http_requests.labels("GET", "/api/v1/health", "503").inc()
    figures = snapshot(m, Counter({"bug-reports": 4, "status-updates": 9}), Counter({"x|get": 7}))
    assert figures["accepted"] == 4
    assert figures["completed"] == 3
    assert figures["failed"] == 1
    assert figures["processing_count"] == 3
    assert figures["processing_seconds_sum"] == pytest.approx(1.0)
    assert figures[bucket_field("processing", 0.25)] == 1
    assert figures[bucket_field("processing", 0.5)] == 3
    assert figures["response_count"] == 2
    assert figures[bucket_field("response", 0.005)] == 1
    assert figures[bucket_field("response", 0.05)] == 2
    assert figures["http_errors"] == 1
    assert figures["bus_messages"] == 13
    assert figures["store_operations"] == 7
    assert figures["llm_calls"] == 0


def test_figures_give_rates_averages_and_p95_from_the_counters() -> None:
    counters: dict[str, float] = {
        "accepted": 1000,
        "completed": 998,
        "failed": 2,
        "processing_count": 998,
        "processing_seconds_sum": 49.9,
        "response_count": 100,
        "response_seconds_sum": 2.0,
        "http_errors": 1,
        "bus_messages": 7000,
        "store_operations": 9000,
    }
    # 90 responses up to 10 ms, the other 10 between 10 and 25 ms.
    for bound in LATENCY_BUCKETS:
        counters[bucket_field("response", bound)] = 90 if bound <= 0.01 else 100
    f = DailyReport(DAY, counters).figures()
    assert f["date"] == "2026-03-14"
    assert f["reports_accepted"] == 1000
    assert f["reports_processed"] == 1000
    assert f["success_rate"] == pytest.approx(0.998)
    assert f["errors"] == 2
    assert f["error_rate"] == pytest.approx(0.002)
    assert f["average_processing_seconds"] == pytest.approx(0.05)
    assert f["average_response_seconds"] == pytest.approx(0.02)
    assert f["p95_response_seconds"] == pytest.approx(0.0175)
    assert f["http_errors"] == 1
    assert f["bus_messages"] == 7000
    assert f["store_operations"] == 9000
    assert f["llm_calls"] == 0


def test_a_day_without_finished_requests_has_no_rates_rather_than_a_division_by_zero() -> None:
    f = DailyReport(DAY, {"accepted": 3}).figures()
    assert f["reports_processed"] == 0
    assert f["success_rate"] is None
    assert f["error_rate"] is None
    assert f["average_processing_seconds"] is None
    assert f["p95_response_seconds"] is None


@pytest.mark.anyio
async def test_recorder_stores_only_what_grew_and_each_day_apart(tmp_path: Path) -> None:
    db = SqliteDatabase(tmp_path / "p.db")
    store = SqliteStateStore(db, SqliteBus(db, {"t": 1}))
    await store.start()
    try:
        totals = {"accepted": 2.0, "failed": 0.0}
        day = [DAY]
        recorder = DailyRecorder(store, lambda: dict(totals), clock=lambda: day[0])
        assert await recorder.flush() == {"accepted": 2.0}
        assert await recorder.flush() == {}
        totals.update(accepted=5.0, failed=1.0)
        await recorder.flush()
        day[0] = date(2026, 3, 15)
        totals["accepted"] = 6.0
        await recorder.flush()
        assert await store.daily(DAY) == {"accepted": 5.0, "failed": 1.0}
        assert await store.daily(date(2026, 3, 15)) == {"accepted": 1.0}
        assert await store.daily(date(2026, 3, 16)) is None
    finally:
        await store.close()


class FailingOnceStore:
    def __init__(self) -> None:
        self.recorded: list[dict[str, float]] = []
        self.fail = True

    async def record_daily(self, day: date, figures: dict[str, float]) -> None:
        if self.fail:
            self.fail = False
            raise ConnectionError("store down")
        self.recorded.append(dict(figures))


@pytest.mark.anyio
async def test_counts_a_failed_write_could_not_store_are_recorded_by_the_next_flush() -> None:
    store = FailingOnceStore()
    totals = {"accepted": 2.0}
    recorder = DailyRecorder(store, lambda: dict(totals), clock=lambda: DAY)  # type: ignore[arg-type]
    with pytest.raises(ConnectionError):
        await recorder.flush()
    totals["accepted"] = 3.0
    await recorder.flush()
    assert store.recorded == [{"accepted": 3.0}]
