"""The distributed deployment on this box: Kafka + Redis + one process per agent.

Three figures: saturated end-to-end throughput with one and with three triage agents (their
ratio is the scaling), time-to-issue percentiles at a fixed 100 reports/s, and how long a
burst of 10,000 reports takes to drain. Issues are filed on the GitHub-shaped test server.
Each phase also says what a report cost: CPU milliseconds per process, peak memory, Redis
commands and Kafka messages (bench/cost.py).
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import aiohttp
from tests.fakes.github_server import run_fake_github
from tests.fleet import TOKEN, Fleet
from tests.service import local_services

from bench import cost, kafka_clients
from bench.e2e import percentiles


def _report(run: str, i: int) -> dict[str, Any]:
    return {
        "id": f"dist-{run}-{i}",
        "title": f"Export {i % 41} fails with a timeout on large workspaces",
        "description": "Exporting a workspace with many projects times out after 30 s.",
        "reporter": "bench@example.com",
        "steps_to_reproduce": ["Open a large workspace", "Export"],
        "expected_behavior": "An archive",
        "actual_behavior": "504 after 30 s",
    }


async def _send(url: str, count: int, rate: float | None, tag: str) -> tuple[int, float]:
    """POST ``count`` reports, open loop at ``rate``/s, or as fast as 64 connections go.

    aiohttp, not httpx: the sender must not be what limits a saturated run."""
    accepted = 0
    connector = aiohttp.TCPConnector(limit=64)
    timeout = aiohttp.ClientTimeout(total=120)
    async with aiohttp.ClientSession(url, connector=connector, timeout=timeout) as session:
        gate = asyncio.Semaphore(64)

        async def one(i: int) -> None:
            nonlocal accepted
            async with gate:
                for _attempt in range(20):
                    try:
                        async with session.post(
                            "/api/v1/bug-reports", json=_report(tag, i)
                        ) as response:
                            await response.read()
                            if response.status in (200, 201):
                                accepted += 1
                                return
                    except aiohttp.ClientError:
                        pass
                    await asyncio.sleep(0.5)

        begin = time.perf_counter()
        tasks = []
        for i in range(count):
            if rate is not None:
                delay = begin + i / rate - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one(i)))
        await asyncio.gather(*tasks)
        return accepted, time.perf_counter() - begin


def _span(states: list[dict[str, Any]]) -> tuple[float, list[float]]:
    """Seconds from the first submission to the last completion; completion offsets."""
    created = [datetime.fromisoformat(s["created_at"]).timestamp() for s in states]
    done = [
        datetime.fromisoformat(s["updated_at"]).timestamp()
        for s in states
        if s["status"] == "completed"
    ]
    start = min(created)
    return max(done) - start, sorted(t - start for t in done)


def _meter(fleet: Fleet, kafka: Any, redis: Any) -> cost.CostMeter:
    def pids() -> dict[str, int]:
        named = {"api": fleet.api}
        for name, group in fleet.agents.items():
            for n, process in enumerate(group, 1):
                named[f"{name} {n}" if name == "triage" else name] = process
        found = {name: p.proc.pid for name, p in named.items() if p.proc is not None}
        for name, service in (("kafka", kafka), ("redis", redis)):
            if service.pid is not None:
                found[name] = service.pid
        return found

    return cost.CostMeter(pids, redis.url, kafka.bootstrap, fleet.prefix)


def _phase(
    fleet: Fleet, meter: cost.CostMeter, count: int, rate: float | None, tag: str
) -> dict[str, Any]:
    before = fleet.count("all")
    start = meter.snapshot()
    accepted, sending = asyncio.run(_send(fleet.api.url, count, rate, tag))
    fleet.wait_all_done(before + count, timeout=900)
    end = meter.snapshot()  # before listing every request, which is not the reports' cost
    states = [s for s in fleet.all_requests() if tag in s["bug_report_id"]]
    span, offsets = _span(states)
    times = [s["processing_time_seconds"] for s in states if s["status"] == "completed"]
    # Once the last report is in, the agents have the box to themselves: their own pace.
    after = [t for t in offsets if t > sending]
    drain = len(after) / (span - sending) if after and span > sending else float("nan")
    return {
        "reports": count,
        "drain_after_ingest_per_s": drain,
        "accepted": accepted,
        "completed": len(times),
        "failed": sum(s["status"] == "failed" for s in states),
        "send_seconds": sending,
        "span_seconds": span,
        "throughput": len(times) / span if span > 0 else float("nan"),
        "time_to_issue_seconds": percentiles(times),
        "cost": cost.per_report(start, end, len(times), meter),
        "samples": {"time_to_issue": times, "completion_offsets": offsets},
    }


def run(throughput_reports: int, rate: float, rate_seconds: float, burst: int) -> dict[str, Any]:
    services = local_services
    result: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp, run_fake_github(token=TOKEN) as github:
        redis = services.RedisServer(Path(tmp) / "redis")
        kafka = services.KafkaBroker(Path(tmp) / "kafka")
        redis.start()
        kafka.start()
        try:
            result["kafka_clients"] = kafka_clients.run(kafka.bootstrap)
            for agents in (1, 3):
                workdir = Path(tmp) / f"fleet-{agents}"
                workdir.mkdir()
                fleet = Fleet(workdir, kafka, redis, github, triage_agents=agents)
                print(f"distributed: {agents} triage agent(s) …", flush=True)
                fleet.start()
                meter = _meter(fleet, kafka, redis)
                try:
                    key = f"triage_agents_{agents}"
                    result[key] = {
                        "saturated": _phase(fleet, meter, throughput_reports, None, f"sat{agents}")
                    }
                    print(
                        f"  saturated: {result[key]['saturated']['throughput']:.0f}/s", flush=True
                    )
                    if agents == 3:
                        at_rate = _phase(fleet, meter, int(rate * rate_seconds), rate, "rate")
                        result["at_rate"] = {"rate": rate, **at_rate}
                        p = at_rate["time_to_issue_seconds"]
                        print(f"  at {rate:.0f}/s: p95 {p['p95'] * 1000:.0f} ms", flush=True)
                        result["burst"] = _phase(fleet, meter, burst, None, "burst")
                        print(f"  burst drained in {result['burst']['span_seconds']:.1f} s")
                finally:
                    fleet.stop()
        finally:
            kafka.stop()
            redis.stop()
    one = result["triage_agents_1"]["saturated"]["throughput"]
    three = result["triage_agents_3"]["saturated"]["throughput"]
    result["scaling_ratio"] = three / one if one else float("nan")
    return result
