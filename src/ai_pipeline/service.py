"""Start and stop a wired pipeline: adapters, agent loops and housekeeping tasks."""

from __future__ import annotations

import asyncio
import faulthandler
import gc
import time
from collections.abc import Awaitable, Callable, Collection
from typing import Any

from ai_pipeline.agents.runner import AgentRunner
from ai_pipeline.bootstrap import AGENTS, Container
from ai_pipeline.domain.events import Step
from ai_pipeline.domain.liveness import StepAgent, steps_not_stuck
from ai_pipeline.observability.logging import get_logger
from ai_pipeline.observability.probes import CachedProbe
from ai_pipeline.reporting import DailyRecorder, snapshot

log = get_logger(__name__)

STARTUP_WATCHDOG_SECONDS = 120.0
# A heartbeat outlives this many intervals: one lost write does not make an agent dead.
HEARTBEAT_LIVES = 3
# Garbage is collected on the event loop this often (``_settle_garbage_collector``).
GC_INTERVAL_SECONDS = 1.0


class Pipeline:
    def __init__(self, container: Container, agents: Collection[str] = tuple(AGENTS)):
        """``agents``: which agents run in this process (names as in ``AGENTS``)."""
        unknown = set(agents) - set(AGENTS)
        if unknown:
            raise ValueError(f"unknown agents: {sorted(unknown)}")
        self.c = container
        self.agents = frozenset(agents)
        self.tracker_probe = CachedProbe(self._ping_trackers)
        self._tasks: list[asyncio.Task[None]] = []
        self._collections = 0
        c = container
        self.daily = DailyRecorder(
            c.store, lambda: snapshot(c.metrics, c.bus.published, c.store.operations)
        )
        self.started = False

    @property
    def runners(self) -> list[AgentRunner]:
        return [r for r in self.c.runners if r.spec.name in self.agents]

    async def start(self) -> None:
        # A start that hangs (seen once in several runs: an API process silent after its
        # banner against a freshly started broker) leaves every thread's stack in the log.
        faulthandler.dump_traceback_later(STARTUP_WATCHDOG_SECONDS)
        try:
            await self._start()
        finally:
            faulthandler.cancel_dump_traceback_later()
        log.info("service_ready", agents=sorted(self.agents))

    async def _start(self) -> None:
        c = self.c
        await c.bus.start()
        await c.store.start()
        await c.loop.store.start()
        if "triage_agent" in self.agents:
            seeded = await c.triage_agent.seed_index(c.settings.duplicate_index_size)
            log.info("duplicate_index_seeded", reports=seeded)
        for runner in self.runners:
            runner.start()
        if self.runners:
            self._every(c.settings.heartbeat_interval_seconds, self.beat, "heartbeat")
        if "coordinator_agent" in self.agents:
            sweep = c.settings.sweep_interval_seconds
            self._every(sweep, self._sweep, "sweeper", first=sweep)
        if "delivery_agent" in self.agents:  # retries due, and tries whose process died
            notify = c.settings.notify_sweep_seconds
            self._every(notify, self._deliver_due, "notifications", first=notify)
        if "reply_agent" in self.agents:  # where the tracker is: reminders and closes
            follow = c.settings.follow_up_interval_seconds
            self._every(follow, self._follow_up, "follow-up", first=follow)
        # Not at once: the topics this process may just have created have no leader for a
        # moment, and asking their offsets then only fails (and preceded a native crash).
        lag = c.settings.lag_interval_seconds
        self._every(lag, self.export_lag, "lag", first=lag)
        # The daily report's counters: one store write per interval, none on the hot path.
        self._every(c.settings.lag_interval_seconds, self._flush_daily, "daily")
        self._every(3600.0, self._housekeeping, "housekeeping")
        _settle_garbage_collector()
        self._every(GC_INTERVAL_SECONDS, self.collect_garbage, "gc", first=GC_INTERVAL_SECONDS)
        self.started = True

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()
        if self.started:
            gc.enable()  # the host process (a test, a tool) goes on with the usual collector
        for runner in self.runners:
            await runner.stop()
        if self.started:
            await self._flush_daily()
        await self.c.tracker.close()
        for close in self.c.close_hooks:
            await close()
        await self.c.bus.close()
        await self.c.store.close()
        for db in self.c.databases:
            await db.close()
        self.started = False

    def _every(
        self, seconds: float, job: Callable[[], Awaitable[None]], name: str, *, first: float = 0
    ) -> None:
        async def loop() -> None:
            await asyncio.sleep(first)
            while True:
                try:
                    await job()
                except Exception as exc:  # keep the loop; the next round may succeed
                    log.error("background_job_failed", job=name, error=str(exc))
                await asyncio.sleep(seconds)

        self._tasks.append(asyncio.create_task(loop(), name=name))

    async def _ping_trackers(self) -> dict[str, Any]:
        """The tracker's health, and the private repository's beside it when one is set:
        security reports cannot be filed while it is unreachable or not private."""
        health = await self.c.tracker.ping()
        private = self.c.private_tracker
        if private is None:
            return health
        private_health = await private.ping()
        status = "healthy" if private_health.get("status") == "healthy" else "unhealthy"
        if health.get("status") != "healthy":
            status = str(health.get("status", "unhealthy"))
        return {**health, "status": status, "private": private_health}

    async def _sweep(self) -> None:
        failed = await self.c.coordinator.fail_stuck(moving=await self._steps_moving())
        if failed:
            log.warning("stuck_requests_failed", count=failed)

    async def _deliver_due(self) -> None:
        while await self.c.loop.delivery.sweep() > 0:
            pass  # a backlog (the receiver came back): drain it now, not one batch a round

    async def _follow_up(self) -> None:
        await self.c.loop.follow_ups.run()

    async def beat(self) -> None:
        """This process's agents say they live, and whether they wait on a dependency."""
        interval = self.c.settings.heartbeat_interval_seconds
        beats = [r.health.beat(r.spec.name, self.c.instance) for r in self.runners]
        await self.c.store.put_heartbeats(beats, ttl_seconds=HEARTBEAT_LIVES * interval)

    async def _steps_moving(self) -> set[Step]:
        """Steps whose waiting requests are not stuck, from every process's heartbeats
        (``domain.liveness``): the coordinator may run far from the agents."""
        step_agents = [
            StepAgent(r.spec.name, r.spec.group, r.spec.topic.value, r.spec.step)
            for r in self.c.runners
            if r.spec.step is not None
        ]
        beats = await self.c.store.heartbeats()
        lag = await self.c.bus.lag()
        timeout = self.c.settings.step_timeout_seconds
        return steps_not_stuck(step_agents, beats, lag, timeout, time.time())

    async def export_lag(self) -> None:
        for (group, topic), lag in (await self.c.bus.lag()).items():
            self.c.metrics.consumer_lag.labels(group, topic).set(lag)

    async def _flush_daily(self) -> None:
        try:
            await self.daily.flush()
        except Exception as exc:  # counted again at the next flush
            log.error("daily_counters_not_recorded", error=str(exc))

    async def collect_garbage(self) -> None:
        """A young collection each interval, older generations every tenth and hundredth
        (CPython's own proportions); on the loop thread, see ``_settle_garbage_collector``."""
        self._collections += 1
        generation = 2 if self._collections % 100 == 0 else 1 if self._collections % 10 == 0 else 0
        gc.collect(generation)

    async def _housekeeping(self) -> None:
        pruned = await self.c.bus.prune()
        if pruned:
            log.info("bus_pruned", messages=pruned)
        forgotten = await self.c.store.expire_lookups()
        if forgotten:
            log.info("report_id_lookups_expired", lookups=forgotten)


def _settle_garbage_collector() -> None:
    """Freeze what start-up made, and collect only on the event loop from now on.

    What exists after start-up (the triage model, the duplicate index seed, the framework)
    lives as long as the process: frozen, the collector never scans it again (full
    collections showed as p99 spikes).

    Automatic collection is off because it runs on whichever thread crosses the
    allocation threshold: librdkafka's delivery, consumer and admin-result threads all run
    Python callbacks, and a collection there finalises whatever cycles are due, uvloop's
    transports and handles included, whose teardown is not thread-safe. API processes
    died with SIGSEGV (no Python stack) under submission bursts; collecting on the loop
    (``Pipeline.collect_garbage``) keeps every finaliser on the loop's own thread.
    """
    gc.collect()
    gc.freeze()
    gc.disable()
