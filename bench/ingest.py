"""Ingest throughput and latency under wrk, beside a no-op FastAPI ceiling in the same run."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
from tests.service import ServiceProcess, free_port

HERE = Path(__file__).parent
SCRIPT = HERE / "post_report.lua"


def wrk(url: str, duration: float, connections: int, run_id: str) -> dict[str, Any]:
    """One wrk run (one thread: the other core is the server's)."""
    out = subprocess.run(
        [
            "wrk",
            "-t1",
            f"-c{connections}",
            f"-d{duration:.0f}s",
            "--timeout",
            "10s",
            "-s",
            str(SCRIPT),
            url,
        ],
        capture_output=True,
        text=True,
        check=True,
        env={"BENCH_RUN_ID": run_id, "PATH": "/usr/bin:/bin"},
    )
    found = re.search(r"^WRK_JSON (.*)$", out.stdout, re.M)
    if found is None:
        raise RuntimeError(f"wrk printed no figures:\n{out.stdout}\n{out.stderr}")
    figures: dict[str, Any] = json.loads(found.group(1))
    return figures


def _measure(url: str, duration: float, connections: int, label: str) -> dict[str, Any]:
    warm = wrk(url, 3, connections, f"{label}-warmup-{time.time_ns()}")
    figures = wrk(url, duration, connections, f"{label}-{time.time_ns()}")
    figures["warmup_created"] = warm["created"]
    return figures


def ceiling(duration: float, connections: int) -> dict[str, Any]:
    port = free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "bench.noop_app:app",
            "--port",
            str(port),
            "--loop",
            "uvloop",
            "--http",
            "httptools",
            "--log-level",
            "warning",
            "--no-access-log",
        ],
        cwd=HERE.parent,
    )
    try:
        _wait_listening(f"http://127.0.0.1:{port}/openapi.json")
        return _measure(f"http://127.0.0.1:{port}", duration, connections, "ceiling")
    finally:
        proc.terminate()
        proc.wait(20)


def service(duration: float, connections: int) -> tuple[dict[str, Any], dict[str, Any]]:
    with tempfile.TemporaryDirectory() as tmp:
        svc = ServiceProcess(Path(tmp)).start()
        try:
            figures = _measure(svc.url, duration, connections, "service")
            stored = _stored(svc.url)
        finally:
            svc.stop()
    return figures, {"stored": stored}


def _stored(url: str) -> int:
    response = httpx.get(f"{url}/api/v1/requests", params={"status": "all", "limit": 1}, timeout=60)
    total: int = response.json()["pagination"]["total"]
    return total


def _wait_listening(url: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            httpx.get(url, timeout=1)
            return
        except httpx.HTTPError:
            time.sleep(0.1)
    raise TimeoutError(url)


def run(duration: float, connections: int) -> dict[str, Any]:
    print(f"ingest: no-op ceiling, {connections} connections, {duration:.0f} s …", flush=True)
    top = ceiling(duration, connections)
    print(f"  {top['rps']:.0f} req/s, p99 {top['latency_ms']['p99']:.1f} ms", flush=True)
    print("ingest: ai-pipeline serve …", flush=True)
    ours, after = service(duration, connections)
    print(f"  {ours['rps']:.0f} req/s, p99 {ours['latency_ms']['p99']:.1f} ms", flush=True)
    # Every 201 of both runs (warm-up included) must be stored, and nothing else.
    accepted = ours["created"] + ours["warmup_created"]
    return {
        "duration_s": duration,
        "connections": connections,
        "ceiling": top,
        "service": ours,
        "ratio": ours["rps"] / top["rps"],
        # wrk stops with up to one request per connection in flight: those are stored
        # (the server finished them) but never counted as answered.
        "durability": {
            "accepted": accepted,
            "stored": after["stored"],
            "in_flight_at_stop_max": 2 * connections,
            "ok": accepted <= after["stored"] <= accepted + 2 * connections,
        },
    }
