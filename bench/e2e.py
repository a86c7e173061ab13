"""End to end at a fixed arrival rate: submit → issue filed, and the server's peak memory."""

from __future__ import annotations

import asyncio
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
from tests.service import ServiceProcess


def percentiles(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    if not ordered:
        return {k: float("nan") for k in ("p50", "p95", "p99", "max")}

    def at(q: float) -> float:
        return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]

    return {"p50": at(0.5), "p95": at(0.95), "p99": at(0.99), "max": ordered[-1]}


async def _open_loop(url: str, rate: float, seconds: float) -> tuple[list[str], list[float], float]:
    """Send at a fixed schedule regardless of how fast answers come (no coordinated omission)."""
    count = int(rate * seconds)
    ids: list[str] = []
    post_ms: list[float] = []
    run = time.time_ns()
    async with httpx.AsyncClient(
        base_url=url, timeout=30, limits=httpx.Limits(max_connections=64)
    ) as client:

        async def one(i: int) -> None:
            body = {
                "id": f"e2e-{run}-{i}",
                "title": f"Crash {i % 37} when exporting a report to PDF",
                "description": "Exporting any report to PDF crashes the app with a stack trace.",
                "reporter": "bench@example.com",
                "steps_to_reproduce": ["Open a report", "Export as PDF"],
                "expected_behavior": "A PDF file",
                "actual_behavior": "NullPointerException",
            }
            started = time.perf_counter()
            response = await client.post("/api/v1/bug-reports", json=body)
            post_ms.append((time.perf_counter() - started) * 1000)
            if response.status_code == 201:
                ids.append(response.json()["request_id"])

        begin = time.perf_counter()
        tasks = []
        for i in range(count):
            delay = begin + i / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one(i)))
        await asyncio.gather(*tasks)
        achieved = count / (time.perf_counter() - begin)
    return ids, post_ms, achieved


def _wait_drained(client: httpx.Client, timeout: float = 600) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if client.get("/api/v1/requests", params={"limit": 1}).json()["pagination"]["total"] == 0:
            return
        time.sleep(0.5)
    raise TimeoutError("requests still active")


def _peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def run(rate: float, seconds: float) -> dict[str, Any]:
    print(f"end to end: {rate:.0f} reports/s for {seconds:.0f} s …", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        svc = ServiceProcess(Path(tmp)).start()
        try:
            ids, post_ms, achieved = asyncio.run(_open_loop(svc.url, rate, seconds))
            with svc.client() as client:
                _wait_drained(client)
                docs = [client.get(f"/api/v1/requests/{rid}/status").json() for rid in ids]
            assert svc.proc is not None
            peak = _peak_rss_mb(svc.proc.pid)
        finally:
            svc.stop()
    done = [d for d in docs if d["status"] == "completed"]
    times = [d["processing_time_seconds"] for d in done]
    result = {
        "rate": rate,
        "seconds": seconds,
        "achieved_rate": achieved,
        "submitted": len(ids),
        "completed": len(done),
        "failed": sum(d["status"] == "failed" for d in docs),
        "processing_seconds": percentiles(times),
        "post_ms": percentiles(post_ms),
        "peak_rss_mb": peak,
        "samples": {"processing_seconds": times, "post_ms": post_ms},
    }
    p = result["processing_seconds"]
    print(
        f"  p50 {p['p50'] * 1000:.0f} ms, p95 {p['p95'] * 1000:.0f} ms, "
        f"p99 {p['p99'] * 1000:.0f} ms; peak RSS {peak:.0f} MB",
        flush=True,
    )
    return result
