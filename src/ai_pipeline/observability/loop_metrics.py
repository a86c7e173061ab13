"""Prometheus metrics of the loop with the reporter: issues resolved, notifications, replies
and follow-up actions (``Metrics.loop``)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram

# An issue's time to resolution runs from hours to months.
RESOLUTION_BUCKETS = tuple(
    float(hours * 3600) for hours in (1, 6, 24, 72, 168, 336, 720, 2160, 4320, 8760)
)


class LoopMetrics:
    def __init__(self, r: CollectorRegistry):
        self.resolved = Counter(
            "ai_pipeline_issues_resolved",
            "Filed issues resolved, by resolution (fixed, not_planned, duplicate).",
            ["resolution"],
            registry=r,
        )
        self.reopened = Counter(
            "ai_pipeline_issues_reopened", "Filed issues reopened after a resolution.", registry=r
        )
        self.time_to_resolution = Histogram(
            "ai_pipeline_time_to_resolution_seconds",
            "From the issue filed to its resolution.",
            buckets=RESOLUTION_BUCKETS,
            registry=r,
        )
        self.notifications = Counter(
            "ai_pipeline_notifications",
            "Notification attempts by channel, event and outcome (delivered, retry, dead,"
            " suppressed).",
            ["channel", "event", "outcome"],
            registry=r,
        )
        self.replies = Counter(
            "ai_pipeline_replies",
            "Reporters' replies posted on their issue, and how many answered every question.",
            ["outcome"],
            registry=r,
        )
        self.follow_ups = Counter(
            "ai_pipeline_follow_up_actions",
            "Follow-up rules' actions taken (remind, close).",
            ["action"],
            registry=r,
        )
