"""Daily report: per-day counters kept in the state store, and the figures made from them.

Redis drops finished requests after a day, so the day's figures cannot be recomputed
from request rows: each process adds what it counted to the day's counters instead.
``DailyRecorder`` takes the deltas of the process's own Prometheus counters (requests
accepted, completed and failed by the coordinator, processing-time and HTTP-latency
histograms, bus publishes, store operations, LLM calls) every flush interval and adds
them to the day's counters with one ``record_daily`` call. Counters add up across
processes and replicas; a process killed loses at most one interval of its counts.
Percentiles come from fixed histogram buckets (``response_le_<bound>`` and
``processing_le_<bound>``, cumulative counts as Prometheus keeps them).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

from prometheus_client import Counter, Histogram

from ai_pipeline.observability.metrics import LATENCY_BUCKETS, PROCESSING_BUCKETS, Metrics
from ai_pipeline.ports import StateStore

RESPONSE = "response"
PROCESSING = "processing"


def bucket_field(histogram: str, bound: float) -> str:
    return f"{histogram}_le_{'+Inf' if math.isinf(bound) else repr(float(bound))}"


def _counter_total(counter: Counter) -> float:
    return sum(s.value for m in counter.collect() for s in m.samples if s.name.endswith("_total"))


def _histogram_fields(histogram: Histogram, name: str, bounds: Iterable[float]) -> dict[str, float]:
    """Cumulative bucket counts, count and sum, summed over every label set."""
    wanted = {repr(float(b)): bucket_field(name, b) for b in bounds}
    fields = dict.fromkeys(wanted.values(), 0.0)
    fields[f"{name}_count"] = 0.0
    fields[f"{name}_seconds_sum"] = 0.0
    for metric in histogram.collect():
        for sample in metric.samples:
            if sample.name.endswith("_bucket"):
                le = sample.labels.get("le", "")
                key = wanted.get(repr(float(le))) if le != "+Inf" else None
                if key is not None:
                    fields[key] += sample.value
            elif sample.name.endswith("_count"):
                fields[f"{name}_count"] += sample.value
            elif sample.name.endswith("_sum"):
                fields[f"{name}_seconds_sum"] += sample.value
    return fields


def snapshot(
    metrics: Metrics, published: Mapping[str, int], operations: Mapping[str, int]
) -> dict[str, float]:
    """The process's running totals of everything the daily report counts."""
    figures: dict[str, float] = {
        "accepted": _counter_total(metrics.requests_total),
        "completed": _counter_total(metrics.requests_completed_total),
        "failed": _counter_total(metrics.requests_failed_total),
        "bus_messages": float(sum(published.values())),
        "store_operations": float(sum(operations.values())),
        "llm_calls": _counter_total(metrics.llm_calls),
        "http_errors": sum(
            s.value
            for m in metrics.http_requests.collect()
            for s in m.samples
            if s.name.endswith("_total") and s.labels.get("status", "").startswith("5")
        ),
    }
    figures.update(_loop_figures(metrics))
    figures.update(_histogram_fields(metrics.http_latency, RESPONSE, LATENCY_BUCKETS))
    figures.update(_histogram_fields(metrics.processing_time, PROCESSING, PROCESSING_BUCKETS))
    return figures


def _loop_figures(metrics: Metrics) -> dict[str, float]:
    """Issues resolved (by the notifier agent, once each), their time to resolution, and
    what reporters were sent and answered."""
    loop = metrics.loop

    def labelled(counter: Counter, **labels: str) -> float:
        return sum(
            s.value
            for m in counter.collect()
            for s in m.samples
            if s.name.endswith("_total") and all(s.labels.get(k) == v for k, v in labels.items())
        )

    resolution = {
        s.name: s.value
        for m in loop.time_to_resolution.collect()
        for s in m.samples
        if s.name.endswith(("_sum", "_count"))
    }
    return {
        "issues_resolved": labelled(loop.resolved),
        "issues_fixed": labelled(loop.resolved, resolution="fixed"),
        "resolution_seconds_sum": resolution.get("ai_pipeline_time_to_resolution_seconds_sum", 0.0),
        "resolution_count": resolution.get("ai_pipeline_time_to_resolution_seconds_count", 0.0),
        "notifications_delivered": labelled(loop.notifications, outcome="delivered"),
        "notifications_dead_lettered": labelled(loop.notifications, outcome="dead"),
        "replies_posted": labelled(loop.replies),
    }


def deltas(previous: Mapping[str, float], current: Mapping[str, float]) -> dict[str, float]:
    """What grew since ``previous``; zero changes left out. A counter that went down (a
    registry replaced) counts from zero."""
    out: dict[str, float] = {}
    for key, value in current.items():
        before = previous.get(key, 0.0)
        grown = value - before if value >= before else value
        if grown:
            out[key] = grown
    return out


def histogram_quantile(q: float, cumulative: Mapping[float, float], total: float) -> float | None:
    """Estimate the ``q`` quantile from cumulative bucket counts (upper bound → count), as
    Prometheus's ``histogram_quantile`` does: linear within the bucket. Observations above
    the last bound report that bound. None without observations."""
    if total <= 0:
        return None
    rank = q * total
    lower, below = 0.0, 0.0
    for bound in sorted(cumulative):
        count = cumulative[bound]
        if count >= rank:
            inside = count - below
            if inside <= 0:
                return bound
            return lower + (bound - lower) * (rank - below) / inside
        lower, below = bound, count
    return lower


@dataclass(frozen=True)
class DailyReport:
    day: date
    counters: dict[str, float]

    def _get(self, name: str) -> float:
        return self.counters.get(name, 0.0)

    def _quantile(self, name: str, bounds: Iterable[float], q: float) -> float | None:
        cumulative = {b: self._get(bucket_field(name, b)) for b in bounds}
        return histogram_quantile(q, cumulative, self._get(f"{name}_count"))

    def figures(self) -> dict[str, Any]:
        """Every figure of the runbook's evening summary; rates as fractions (0..1)."""
        completed, failed = self._get("completed"), self._get("failed")
        processed = completed + failed
        processing_n = self._get(f"{PROCESSING}_count")
        response_n = self._get(f"{RESPONSE}_count")
        return {
            "date": self.day.isoformat(),
            "reports_accepted": int(self._get("accepted")),
            "reports_processed": int(processed),
            "completed": int(completed),
            "failed": int(failed),
            "success_rate": _ratio(completed, processed),
            "errors": int(failed),
            "error_rate": _ratio(failed, processed),
            "average_processing_seconds": _ratio(
                self._get(f"{PROCESSING}_seconds_sum"), processing_n
            ),
            "p95_processing_seconds": _round(self._quantile(PROCESSING, PROCESSING_BUCKETS, 0.95)),
            "http_requests": int(response_n),
            "http_errors": int(self._get("http_errors")),
            "average_response_seconds": _ratio(self._get(f"{RESPONSE}_seconds_sum"), response_n),
            "p95_response_seconds": _round(self._quantile(RESPONSE, LATENCY_BUCKETS, 0.95)),
            "bus_messages": int(self._get("bus_messages")),
            "store_operations": int(self._get("store_operations")),
            "llm_calls": int(self._get("llm_calls")),
            "issues_resolved": int(self._get("issues_resolved")),
            "issues_fixed": int(self._get("issues_fixed")),
            "fixed_share": _ratio(self._get("issues_fixed"), self._get("issues_resolved")),
            "average_time_to_resolution_seconds": _ratio(
                self._get("resolution_seconds_sum"), self._get("resolution_count")
            ),
            "notifications_delivered": int(self._get("notifications_delivered")),
            "notifications_dead_lettered": int(self._get("notifications_dead_lettered")),
            "replies_posted": int(self._get("replies_posted")),
        }


def _ratio(part: float, whole: float) -> float | None:
    return round(part / whole, 6) if whole else None


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 6)


def today() -> date:
    return datetime.now(UTC).date()


class DailyRecorder:
    """Adds the process's counter deltas to the current UTC day in the state store."""

    def __init__(
        self,
        store: StateStore,
        read: Callable[[], dict[str, float]],
        clock: Callable[[], date] = today,
    ):
        self.store = store
        self._read = read
        self._clock = clock
        self._last: dict[str, float] = {}

    async def flush(self) -> dict[str, float]:
        """Record what grew since the last flush; returns it."""
        current = self._read()
        grown = deltas(self._last, current)
        if grown:
            await self.store.record_daily(self._clock(), grown)
        self._last = current  # only once stored: a failed write is retried next round
        return grown


async def daily_report(store: StateStore, day: date) -> DailyReport | None:
    counters = await store.daily(day)
    return None if counters is None else DailyReport(day, counters)
