"""The health document and the aggregate metrics document of the API contract."""

from __future__ import annotations

import bisect
import statistics
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from ai_pipeline import __version__
from ai_pipeline.agents.runner import AgentRunner, AgentStatus
from ai_pipeline.bootstrap import AGENTS, Container
from ai_pipeline.domain.resolution import RESOLVED, ResolutionState
from ai_pipeline.loop_ports import LoopStore
from ai_pipeline.observability.metrics import PROCESSING_BUCKETS
from ai_pipeline.ports import RequestStats
from ai_pipeline.service import Pipeline

PERIODS = {
    "1h": timedelta(hours=1),
    "24h": timedelta(days=1),
    "7d": timedelta(days=7),
    "30d": timedelta(days=30),
}
DAILY_DAYS = 14
STEP_AGENTS = {step.value: name for name, (_g, _t, step) in AGENTS.items() if step is not None}
AGENT_NAMES = tuple(AGENTS)


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
        "waiting_on": h.waiting_on,
    }


async def _probe(name: str, probe: Any) -> dict[str, Any]:
    try:
        result: dict[str, Any] = await probe()
        return result
    except Exception as exc:
        return {"status": "unhealthy", "error": f"{type(exc).__name__}: {exc}"[:500], "name": name}


async def health_document(
    c: Container, pipeline: Pipeline, whole_service: bool = True
) -> tuple[dict[str, Any], int]:
    """``whole_service``: report every agent (an API process); else only this process's."""
    components: dict[str, Any] = {}
    runners = {r.spec.name: r for r in pipeline.runners}
    remote = [n for n in AGENT_NAMES if n not in runners] if whole_service else []
    members = await _probe("bus", lambda: _members(c, remote)) if remote else {}
    for name in AGENT_NAMES:
        runner = runners.get(name)
        if runner is not None:
            components[name] = (
                _agent_component(runner)
                if pipeline.started
                else {"status": "unhealthy", "state": "starting"}
            )
        elif name in remote:
            components[name] = _remote_component(name, members)
    bus, state = await _probe("bus", c.bus.ping), await _probe("state", c.store.ping)
    components[_component_name(bus, "bus")] = bus
    components[_component_name(state, "state")] = state
    components["llm"] = ({"status": "disabled"} if c.chat is None else c.chat.status()) | {
        "engine": c.triage_agent.engine.name
    }
    components["tracker"] = await _probe("tracker", pipeline.tracker_probe)
    core_down = bus["status"] == "unhealthy" or state["status"] == "unhealthy"
    degraded = any(v["status"] != "healthy" for k, v in components.items() if k != "llm")
    started = pipeline.started
    status = "unhealthy" if core_down or not started else "degraded" if degraded else "healthy"
    doc = {
        "status": status,
        "timestamp": datetime.now(UTC).isoformat(),
        "version": __version__,
        "agents_in_this_process": sorted(runners),
        "components": components,
        "metrics": await _headline(c) if not core_down else {},
    }
    return doc, 503 if status == "unhealthy" else 200


def _component_name(probe: dict[str, Any], generic: str) -> str:
    """``kafka``/``redis`` when those back the bus/state (the runbook's names), else generic."""
    backend = probe.get("backend")
    return str(backend) if backend in ("kafka", "redis") else generic


async def _members(c: Container, names: list[str]) -> dict[str, Any]:
    groups = [AGENTS[n][0] for n in names]
    return {"status": "healthy", "members": await c.bus.group_members(groups)}


def _remote_component(name: str, members: dict[str, Any]) -> dict[str, Any]:
    group = AGENTS[name][0]
    count = members.get("members", {}).get(group)
    if count is None:
        return {"status": "unknown", "state": "not running in this process", "group": group}
    return {
        "status": "healthy" if count > 0 else "unhealthy",
        "state": "remote",
        "group": group,
        "members": count,
    }


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
        "processing_time_histogram": histogram(times, PROCESSING_BUCKETS),
        "daily": await daily_counts(c, DAILY_DAYS),
        "resolution": await resolution_figures(c.loop.store, since),
    }


async def resolution_figures(loop: LoopStore, since: datetime) -> dict[str, Any]:
    """Issues resolved since ``since`` by how they ended, the share fixed, and the time
    from filing to resolution; ``unresolved``: filed issues open now (whatever their age)."""
    resolved = await loop.resolved_since(since)
    counts = {state.value: 0 for state in sorted(RESOLVED)}
    seconds = []
    for conversation in resolved:
        counts[conversation.resolution.state.value] += 1
        elapsed = conversation.resolution.at - conversation.filed_at
        seconds.append(max(0.0, elapsed.total_seconds()))
    fixed = counts[ResolutionState.FIXED.value]
    return {
        "resolved": len(resolved),
        **counts,
        "share_fixed": round(fixed / len(resolved), 6) if resolved else None,
        "time_to_resolution_seconds": {
            "average": _round(_mean(seconds)),
            "median": _round(percentile(seconds, 0.5)),
            "p95": _round(percentile(seconds, 0.95)),
            "samples": len(seconds),
        },
        "unresolved": await loop.count_unresolved(),
    }


def histogram(samples: list[float], bounds: tuple[float, ...]) -> dict[str, list[Any]]:
    """Counts per bucket: ``counts[i]`` up to ``bounds[i]``, the last one above them all."""
    counts = [0] * (len(bounds) + 1)
    for value in samples:
        counts[bisect.bisect_left(bounds, value)] += 1
    return {"bounds_seconds": list(bounds), "counts": counts}


async def daily_counts(c: Container, days: int) -> list[dict[str, Any]]:
    """Reports accepted, completed and failed per UTC day (the daily report's counters),
    oldest first, today included; a day without counters counts zero."""
    today = datetime.now(UTC).date()
    result = []
    for back in range(days - 1, -1, -1):
        day = today - timedelta(days=back)
        counters = await c.store.daily(day) or {}
        result.append(
            {
                "date": day.isoformat(),
                "submitted": int(counters.get("accepted", 0)),
                "completed": int(counters.get("completed", 0)),
                "failed": int(counters.get("failed", 0)),
            }
        )
    return result
