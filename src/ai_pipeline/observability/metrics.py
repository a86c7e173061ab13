"""Prometheus metrics, one registry per service instance (tests get their own)."""

from __future__ import annotations

from collections import Counter as Tally
from collections.abc import Callable, Iterable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info
from prometheus_client.core import CounterMetricFamily, Metric
from prometheus_client.registry import Collector

from ai_pipeline.observability.loop_metrics import LoopMetrics

# 2.0 is the API latency objective: the SLO rules count requests above it.
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0)
PROCESSING_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 900.0)


class TallyCollector(Collector):
    """Exposes an adapter's plain tally, so adapters need no Prometheus import.

    Keys are label values joined by ``|``, in the order of ``labels``.
    """

    def __init__(self, name: str, doc: str, labels: list[str], source: Callable[[], Tally[str]]):
        self._name, self._doc, self._labels, self._source = name, doc, labels, source

    def collect(self) -> Iterable[Metric]:
        family = CounterMetricFamily(self._name, self._doc, labels=self._labels)
        for key, count in sorted(self._source().items()):
            family.add_metric(key.split("|"), count)
        yield family


class Metrics:
    def __init__(self, registry: CollectorRegistry | None = None):
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.requests_total = Counter(
            "ai_pipeline_requests", "Bug-report processing requests accepted.", registry=r
        )
        self.requests_failed_total = Counter(
            "ai_pipeline_requests_failed", "Requests that ended failed.", registry=r
        )
        self.requests_completed_total = Counter(
            "ai_pipeline_requests_completed", "Requests that ended with an issue filed.", registry=r
        )
        self.http_requests = Counter(
            "ai_pipeline_http_requests",
            "HTTP requests served, by route and status.",
            ["method", "route", "status"],
            registry=r,
        )
        self.http_latency = Histogram(
            "ai_pipeline_http_request_duration_seconds",
            "HTTP request latency by route.",
            ["method", "route"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.processing_time = Histogram(
            "ai_pipeline_processing_time_seconds",
            "End-to-end time from submission to the issue filed.",
            buckets=PROCESSING_BUCKETS,
            registry=r,
        )
        self.agent_handled = Counter(
            "ai_pipeline_agent_handled", "Messages an agent handled.", ["agent"], registry=r
        )
        self.agent_failed = Counter(
            "ai_pipeline_agent_failed",
            "Handler attempts that raised (each retry counts).",
            ["agent"],
            registry=r,
        )
        self.agent_dead_letters = Counter(
            "ai_pipeline_agent_dead_letters",
            "Messages an agent sent to its dead-letter topic.",
            ["agent", "topic"],
            registry=r,
        )
        self.agent_handling_time = Histogram(
            "ai_pipeline_agent_handling_seconds",
            "Time an agent spent on one message, retries included.",
            ["agent"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.agent_up = Gauge(
            "ai_pipeline_agent_up", "1 while the agent's consumer loop runs.", ["agent"], registry=r
        )
        self.bus_consumed = Counter(
            "ai_pipeline_bus_messages_consumed",
            "Messages consumed, by group and topic.",
            ["group", "topic"],
            registry=r,
        )
        self.consumer_lag = Gauge(
            "kafka_consumer_lag_sum",
            "Messages not yet consumed, summed over partitions, by consumer group and topic.",
            ["group", "topic"],
            registry=r,
        )
        self.llm_calls = Counter(
            "ai_pipeline_llm_calls", "LLM calls by outcome.", ["model", "outcome"], registry=r
        )
        self.llm_tokens = Counter(
            "ai_pipeline_llm_tokens", "LLM tokens used.", ["model", "kind"], registry=r
        )
        self.llm_errors = Counter(
            "ai_pipeline_llm_errors", "LLM calls that failed.", ["model", "reason"], registry=r
        )
        self.llm_latency = Histogram(
            "ai_pipeline_llm_call_duration_seconds",
            "Time of one LLM call (attempt) that got an answer.",
            ["model"],
            buckets=PROCESSING_BUCKETS,
            registry=r,
        )
        self.llm_fallbacks = Counter(
            "ai_pipeline_llm_fallbacks",
            "Triage or drafting done without the LLM, by component and reason"
            " (timeout, unavailable, rate_limited, rejected, invalid_output, budget_exhausted).",
            ["component", "reason"],
            registry=r,
        )
        self.llm_rejected_values = Counter(
            "ai_pipeline_llm_rejected_values",
            "LLM answers with a value outside the allowed set (that field kept local's value).",
            ["component", "field"],
            registry=r,
        )
        self.llm_budget_remaining = Gauge(
            "ai_pipeline_llm_budget_remaining_tokens",
            "Tokens left in today's (UTC) LLM budget of this process.",
            registry=r,
        )
        self.tracker_calls = Counter(
            "ai_pipeline_tracker_calls",
            "Tracker API calls by operation and outcome.",
            ["tracker", "operation", "outcome"],
            registry=r,
        )
        self.tracker_rate_limit_waits = Counter(
            "ai_pipeline_tracker_rate_limit_waits",
            "Times the tracker waited before a request: primary or secondary rate limit,"
            " or content-creation pacing.",
            ["tracker", "reason"],
            registry=r,
        )
        self.tracker_rate_limit_wait_seconds = Counter(
            "ai_pipeline_tracker_rate_limit_wait_seconds",
            "Seconds the tracker waited before requests, by reason.",
            ["tracker", "reason"],
            registry=r,
        )
        self.tracker_retries = Counter(
            "ai_pipeline_tracker_retries",
            "Tracker calls handed back for a later retry (server_error, timeout, connection,"
            " rate_limit; listing_lag: an unknown outcome not listed yet; lease: another"
            " tracker process is filing the request); the message is redelivered, never"
            " dead-lettered.",
            ["tracker", "reason"],
            registry=r,
        )
        self.tracker_values_dropped = Counter(
            "ai_pipeline_tracker_values_dropped",
            "Labels, assignees or milestones left out of a filed issue because the"
            " repository lacks them.",
            ["tracker", "kind"],
            registry=r,
        )
        self.triage_confidence = Histogram(
            "ai_pipeline_triage_confidence",
            "Confidence of triage decisions, by field.",
            ["field"],
            buckets=(0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0),
            registry=r,
        )
        self.auth_refusals = Counter(
            "ai_pipeline_auth_refusals",
            "API requests refused: missing, unknown or revoked key, scope, rate limit.",
            ["reason"],
            registry=r,
        )
        self.build_info = Info("ai_pipeline_build", "Version and backends.", registry=r)
        self.loop = LoopMetrics(r)

    def watch_tally(
        self, name: str, doc: str, labels: list[str], source: Callable[[], Tally[str]]
    ) -> None:
        self.registry.register(TallyCollector(name, doc, labels, source))
