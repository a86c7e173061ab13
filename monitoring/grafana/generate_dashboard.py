"""Writes ai-pipeline-dashboard.json: the runbook's KPIs as a Grafana dashboard.

    python monitoring/grafana/generate_dashboard.py

A test checks every query with promtool and that the committed JSON matches this.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

J = 'job="ai-pipeline"'
PANELS: list[tuple[str, str, list[tuple[str, str]], str]] = [
    # (title, type, [(query, legend)], unit)
    ("Reports processed (24 h)", "stat", [
        (f"sum(increase(ai_pipeline_requests_completed_total{{{J}}}[1d]))"
         f" + sum(increase(ai_pipeline_requests_failed_total{{{J}}}[1d]))", "processed"),
    ], "short"),
    ("Success rate (24 h)", "stat", [("1 - slo:errors_error_ratio:rate1d", "success")],
     "percentunit"),
    ("Availability (30 m)", "stat", [("1 - slo:availability_error_ratio:rate30m", "available")],
     "percentunit"),
    ("Consumer lag", "timeseries", [
        (f"max by (group, topic) (kafka_consumer_lag_sum{{{J}}})", "{{group}} / {{topic}}"),
    ], "short"),
    ("Time to issue (submit → filed)", "timeseries", [
        (f"histogram_quantile({q}, sum by (le) "
         f"(rate(ai_pipeline_processing_time_seconds_bucket{{{J}}}[5m])))", f"p{int(q * 100)}")
        for q in (0.5, 0.95, 0.99)
    ], "s"),
    ("API latency p95 by route", "timeseries", [
        (f"histogram_quantile(0.95, sum by (le, route) "
         f"(rate(ai_pipeline_http_request_duration_seconds_bucket{{{J}}}[5m])))", "{{route}}"),
    ], "s"),
    ("Error rate", "timeseries", [
        ("slo:errors_error_ratio:rate5m", "failed / accepted"),
        ("slo:availability_error_ratio:rate5m", "HTTP 5xx / all"),
    ], "percentunit"),
    ("Throughput", "timeseries", [
        (f"sum(rate(ai_pipeline_requests_total{{{J}}}[5m]))", "accepted/s"),
        (f"sum by (agent) (rate(ai_pipeline_agent_handled_total{{{J}}}[5m]))", "{{agent}}/s"),
    ], "reqps"),
    ("Dead letters and retries", "timeseries", [
        (f"sum by (agent) (increase(ai_pipeline_agent_dead_letters_total{{{J}}}[1h]))",
         "dead-lettered {{agent}}"),
        (f"sum by (agent) (increase(ai_pipeline_agent_failed_total{{{J}}}[1h]))",
         "failed attempts {{agent}}"),
    ], "short"),
    ("Agents up", "stat", [(f"min by (agent) (ai_pipeline_agent_up{{{J}}})", "{{agent}}")],
     "short"),
]  # fmt: skip


def queries() -> list[str]:
    return [expr for _, _, targets, _ in PANELS for expr, _ in targets]


def render() -> str:
    panels: list[dict[str, Any]] = []
    for i, (title, kind, targets, unit) in enumerate(PANELS):
        width = 6 if kind == "stat" else 12
        x = sum(6 if p["type"] == "stat" else 12 for p in panels) % 24
        panels.append(
            {
                "id": i + 1,
                "title": title,
                "type": kind,
                "datasource": {"type": "prometheus", "uid": "${datasource}"},
                "gridPos": {"h": 8, "w": width, "x": x, "y": (i // 2) * 8},
                "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
                "targets": [
                    {"refId": chr(65 + n), "expr": expr, "legendFormat": legend}
                    for n, (expr, legend) in enumerate(targets)
                ],
            }
        )
    dashboard = {
        "title": "AI Pipeline",
        "uid": "ai-pipeline",
        "tags": ["ai-pipeline"],
        "timezone": "utc",
        "schemaVersion": 39,
        "refresh": "30s",
        "time": {"from": "now-24h", "to": "now"},
        "templating": {
            "list": [{"name": "datasource", "type": "datasource", "query": "prometheus"}]
        },
        "panels": panels,
    }
    return json.dumps(dashboard, indent=2) + "\n"


if __name__ == "__main__":
    target = Path(__file__).parent / "ai-pipeline-dashboard.json"
    target.write_text(render())
    print(f"wrote {target}")
