"""The health document and the aggregate metrics document of the API contract."""

from __future__ import annotations

import statistics
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from ai_pipeline import __version__
from ai_pipeline.agents.runner import AgentRunner, AgentStatus
from ai_pipeline.bootstrap import Container
from ai_pipeline.ports import RequestStats

PERIODS = {
    "1h": timedelta(hours=1),
    "24h": timedelta(days=1),
    "7d": timedelta(days=7),
    "30d": timedelta(days=30),
}
STEP_AGENTS = {
    "triage": "triage_agent",
    "ticket_creation": "ticket_creation_agent",
    "github": "github_api_agent",
}
AGENT_NAMES = ("coordinator_agent", "triage_agent", "ticket_creation_agent", "github_api_agent")


def _agent_component(runner: AgentRunner) -> dict[str, Any]:
    h = runner.health
    status = {
        AgentStatus.STARTING: "healthy",
        AgentStatus.RUNNING: "healthy",
        AgentStatus.DEGRADED: "degraded",
        AgentStatus.STOPPED: "unhealthy",
    }[h.status]
    if not runner.alive:
        status = "unhealthy"
    return {
        "status": status,
        "state": h.status.value if runner.alive else AgentStatus.STOPPED.value,
        "group": runner.spec.group,
        "topic": runner.spec.topic.value,
        "handled": h.handled,
        "dead_lettered": h.dead_lettered,
        "last_poll_seconds_ago": round(time.time() - h.last_poll, 3) if h.last_poll else None,
        "last_error": h.last_error,
    }


async def _probe(name: str, probe: Any) -> dict[str, Any]:
    try:
        result: dict[str, Any] = await probe()
        return result
    except Exception as exc:
        return {"status": "unhealthy", "error": f"{type(exc).__name__}: {exc}"[:500], "name": name}


async def health_document(c: Container, started: bool) -> tuple[dict[str, Any], int]:
    components: dict[str, Any] = {}
    runners = {r.spec.name: r for r in c.runners}
    for name in AGENT_NAMES:
        runner = runners.get(name)
        components[name] = (
            _agent_component(runner)
            if runner is not None and started
            else {"status": "unhealthy", "state": "not running in this process"}
        )
    components["bus"] = await _probe("bus", c.bus.ping)
    components["state"] = await _probe("state", c.store.ping)
    components["llm"] = {"status": "disabled", "engine": c.triage_agent.engine.name}
    components["tracker"] = await _probe("tracker", c.tracker.ping)
    core_down = any(components[k]["status"] == "unhealthy" for k in ("bus", "state"))
    degraded = any(v["status"] != "healthy" for k, v in components.items() if k != "llm")
    status = "unhealthy" if core_down or not started else "degraded" if degraded else "healthy"
    doc = {
        "status": status,
        "timestamp": datetime.now(UTC).isoformat(),
        "version": __version__,
        "components": components,
        "metrics": await _headline(c) if not core_down else {},
    }
    return doc, 503 if status == "unhealthy" else 200


async def _headline(c: Container) -> dict[str, Any]:
    now = datetime.now(UTC)
    midnight = now.replace(hour=0, minute=0, second=0, microsecond=0)
    # Probes call this every few seconds: counts and a bounded sample, no per-step scans.
    today = await c.store.stats(midnight, sample_limit=1, with_steps=False)
    day = await c.store.stats(now - PERIODS["24h"], sample_limit=10_000, with_steps=False)
    return {
        "requests_processed_today": today.completed + today.failed,
        "success_rate_24h": _success_rate(day),
        "average_processing_time_seconds": _round(_mean(day.processing_seconds)),
    }


def _success_rate(stats: RequestStats) -> float | None:
    ended = stats.completed + stats.failed
    return round(stats.completed / ended, 6) if ended else None


def _mean(values: list[float]) -> float | None:
    return statistics.fmean(values) if values else None


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 4)


def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, round(q * (len(ordered) - 1))))
    return ordered[rank]


async def metrics_document(c: Container, period: str) -> dict[str, Any]:
    since = datetime.now(UTC) - PERIODS[period]
    stats = await c.store.stats(since)
    times = stats.processing_seconds
    agents: dict[str, Any] = {}
    for step, agent in STEP_AGENTS.items():
        durations = stats.step_seconds.get(step, [])
        failed = stats.step_failures.get(step, 0)
        processed = len(durations) + failed
        agents[agent] = {
            "processed": processed,
            "success": len(durations),
            "failed": failed,
            "success_rate": round(len(durations) / processed, 6) if processed else None,
            "average_time_seconds": _round(_mean(durations)),
        }
    return {
        "period": period,
        "since": since.isoformat(),
        "requests": {
            "total": stats.total,
            "completed": stats.completed,
            "failed": stats.failed,
            "active": stats.active,
        },
        "success_rate": _success_rate(stats),
        "processing_time_seconds": {
            "average": _round(_mean(times)),
            "median": _round(percentile(times, 0.5)),
            "p95": _round(percentile(times, 0.95)),
            "p99": _round(percentile(times, 0.99)),
            "samples": len(times),
        },
        "agents": agents,
    }
