"""Ingest throughput and latency under wrk, beside a no-op FastAPI ceiling in the same run.

The machine is shared and noisy, so the two are measured in alternating rounds against
servers started once, and the ratio is taken per round: a slow minute hurts both sides
of one round instead of one side of the comparison. The service keeps its backlog from
round to round, as in one long flood, and is frozen while the ceiling is measured.
"""

from __future__ import annotations

import json
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
from tests.service import ServiceProcess, free_port

HERE = Path(__file__).parent
SCRIPT = HERE / "post_report.lua"


def wrk(url: str, duration: float, connections: int, run_id: str) -> dict[str, Any]:
    """One wrk run (one thread: the other core is the server's)."""
    out = subprocess.run(
        ["wrk", "-t1", f"-c{connections}", f"-d{duration:.0f}s", "--timeout", "10s",
         "-s", str(SCRIPT), url],
        capture_output=True,
        text=True,
        check=True,
        env={"BENCH_RUN_ID": run_id, "PATH": "/usr/bin:/bin"},
    )  # fmt: skip
    found = re.search(r"^WRK_JSON (.*)$", out.stdout, re.M)
    if found is None:
        raise RuntimeError(f"wrk printed no figures:\n{out.stdout}\n{out.stderr}")
    figures: dict[str, Any] = json.loads(found.group(1))
    return figures


@contextmanager
def ceiling_server() -> Iterator[str]:
    port = free_port()
    command = [sys.executable, "-m", "uvicorn", "bench.noop_app:app", "--port", str(port),
               "--loop", "uvloop", "--http", "httptools", "--log-level", "warning",
               "--no-access-log"]  # fmt: skip
    proc = subprocess.Popen(command, cwd=HERE.parent)
    try:
        _wait_listening(f"http://127.0.0.1:{port}/openapi.json")
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(20)


@contextmanager
def service_server() -> Iterator[ServiceProcess]:
    with tempfile.TemporaryDirectory() as tmp, ServiceProcess(Path(tmp)) as svc:
        yield svc


@contextmanager
def frozen(svc: ServiceProcess) -> Iterator[None]:
    """SIGSTOP the service while the ceiling runs: its agents, still working through the
    previous round's backlog, must not take CPU from the ceiling's measurement."""
    assert svc.proc is not None
    svc.proc.send_signal(signal.SIGSTOP)
    try:
        yield
    finally:
        svc.proc.send_signal(signal.SIGCONT)


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


def _merge(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    """Totals over rounds; latency percentiles from the median round."""
    by_rps = sorted(rounds, key=lambda r: r["rps"])
    median = by_rps[len(by_rps) // 2]
    return {
        **median,
        "rps": statistics.median(r["rps"] for r in rounds),
        "requests": sum(r["requests"] for r in rounds),
        "created": sum(r["created"] for r in rounds),
        "rounds_rps": [round(r["rps"], 1) for r in rounds],
        "rounds_p99_ms": [r["latency_ms"]["p99"] for r in rounds],
    }


def run(duration: float, connections: int, rounds: int = 3) -> dict[str, Any]:
    per_round = duration / rounds
    top_runs: list[dict[str, Any]] = []
    our_runs: list[dict[str, Any]] = []
    with ceiling_server() as top_url, service_server() as svc:
        tag = time.time_ns()
        with frozen(svc):
            wrk(top_url, 3, connections, f"warm-ceiling-{tag}")
        warm = wrk(svc.url, 3, connections, f"warm-service-{tag}")
        for n in range(rounds):
            print(f"ingest round {n + 1}/{rounds}: {per_round:.0f} s each …", flush=True)
            with frozen(svc):
                top_runs.append(wrk(top_url, per_round, connections, f"ceiling-{n}-{tag}"))
            our_runs.append(wrk(svc.url, per_round, connections, f"service-{n}-{tag}"))
            print(f"  ceiling {top_runs[-1]['rps']:.0f} req/s, ai-pipeline "
                  f"{our_runs[-1]['rps']:.0f} req/s, p99 "
                  f"{our_runs[-1]['latency_ms']['p99']:.1f} ms", flush=True)  # fmt: skip
        stored = _stored(svc.url)
    ratios = [o["rps"] / t["rps"] for o, t in zip(our_runs, top_runs, strict=True)]
    # Every 201 (warm-up included) must be stored. wrk stops each run with up to one
    # request per connection in flight: those are stored but never counted as answered.
    accepted = warm["created"] + sum(r["created"] for r in our_runs)
    slack = (rounds + 1) * connections
    return {
        "duration_s": duration,
        "connections": connections,
        "rounds": rounds,
        "ceiling": _merge(top_runs),
        "service": _merge(our_runs),
        "ratio": statistics.median(ratios),
        "ratios": [round(r, 3) for r in ratios],
        "durability": {
            "accepted": accepted,
            "stored": stored,
            "in_flight_at_stop_max": slack,
            "ok": accepted <= stored <= accepted + slack,
        },
    }
