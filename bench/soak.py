"""A soak of the distributed deployment: bursts of submissions on Kafka and Redis for a while,
with core dumps on, to see whether any process dies (the API once died with SIGSEGV under
submission bursts).

    python -m bench --only soak --soak-minutes 30

Each round posts a burst as fast as 64 connections go and waits until every report is filed.
A process that dies is recorded (exit code or signal), its core file is read with gdb for the
native stack, and it is started again so the soak goes on. The figure that matters is how many
process-hours ran without a crash.
"""

from __future__ import annotations

import asyncio
import functools
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import httpx
from tests.fakes.github_server import run_fake_github
from tests.fleet import TOKEN, Fleet
from tests.service import ServiceProcess, local_services

from bench.distributed import _send

T = TypeVar("T")


def run(minutes: float, burst: int = 1500, triage_agents: int = 3) -> dict[str, Any]:
    # Children inherit the limit; the kernel's core_pattern decides where cores go (a relative
    # pattern: the process's working directory, the fleet's workdir).
    resource.setrlimit(resource.RLIMIT_CORE, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))
    core_pattern = Path("/proc/sys/kernel/core_pattern").read_text().strip()
    deaths: list[dict[str, Any]] = []
    rounds: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp, run_fake_github(token=TOKEN) as github:
        redis = local_services.RedisServer(Path(tmp) / "redis")
        kafka = local_services.KafkaBroker(Path(tmp) / "kafka")
        workdir = Path(tmp) / "fleet"
        workdir.mkdir()
        fleet: Fleet | None = None
        started = time.monotonic()
        process_seconds = 0.0
        try:
            redis.start()
            kafka.start()
            fleet = Fleet(workdir, kafka, redis, github, triage_agents=triage_agents)
            fleet.start()
            started = time.monotonic()
            end = time.monotonic() + minutes * 60
            while time.monotonic() < end:
                number = len(rounds)
                before = _when_up(fleet, workdir, deaths, lambda: fleet.count("all"))
                accepted, sending = asyncio.run(_send(fleet.api.url, burst, None, f"soak{number}"))
                deadline = time.monotonic() + 900
                drained = functools.partial(_drained, fleet, before)
                while not _when_up(fleet, workdir, deaths, drained):
                    if time.monotonic() > deadline:
                        raise TimeoutError(f"round {number} not drained in 900 s\n{fleet.logs()}")
                    time.sleep(2)
                rounds.append({"accepted": accepted, "send_seconds": round(sending, 2)})
                print(
                    f"soak round {number}: {accepted}/{burst} accepted in {sending:.1f} s,"
                    f" {len(deaths)} deaths so far, {(end - time.monotonic()) / 60:.1f} min left",
                    flush=True,
                )
            states = fleet.all_requests()
            _reap(fleet, workdir, deaths)
        finally:
            if fleet is not None:  # a restart takes seconds: each process counts the whole soak
                process_seconds = len(fleet.processes) * (time.monotonic() - started)
                fleet.stop()
            kafka.stop()
            redis.stop()
    return {
        "minutes": minutes,
        "burst": burst,
        "rounds": len(rounds),
        "reports": len(states),
        "completed": sum(s["status"] == "completed" for s in states),
        "failed": sum(s["status"] == "failed" for s in states),
        "processes": 1 + triage_agents + 2,  # API, triage agents, ticket, github
        "process_hours": round(process_seconds / 3600, 2),
        "deaths": deaths,
        "core_pattern": core_pattern,
    }


def _when_up(fleet: Fleet, workdir: Path, deaths: list[dict[str, Any]], ask: Callable[[], T]) -> T:
    """``ask`` the API, restarting whatever died meanwhile (the API itself included)."""
    while True:
        for process in _reap(fleet, workdir, deaths):
            process.start(120)
        try:
            return ask()
        except (httpx.HTTPError, KeyError, ValueError):
            time.sleep(1)


def _drained(fleet: Fleet, before: int) -> bool:
    """Nothing active and every report of this round ended (their count is what the API
    now holds beyond ``before``: a post whose answer a crash lost may still have landed)."""
    return fleet.count("active") == 0 and fleet.count("all") > before


def _reap(fleet: Fleet, workdir: Path, deaths: list[dict[str, Any]]) -> list[ServiceProcess]:
    """Processes that exited, each recorded with its code and, from a core, its stack."""
    dead = []
    for process in fleet.processes:
        proc = process.proc
        if proc is None or proc.poll() is None:
            continue
        death: dict[str, Any] = {
            "process": " ".join(process.command),
            "returncode": proc.returncode,
            "log_tail": process.log()[-3000:],
        }
        core = _newest_core(workdir)
        if core is not None:
            death["core"] = str(core)
            death["native_stack"] = _native_stack(core)
        deaths.append(death)
        print(f"soak: {death['process']} exited with {proc.returncode}", flush=True)
        dead.append(process)
    return dead


def _newest_core(workdir: Path) -> Path | None:
    cores = sorted(workdir.glob("core*"), key=lambda p: p.stat().st_mtime)
    return cores[-1] if cores else None


def _native_stack(core: Path) -> str:
    gdb = shutil.which("gdb")
    if gdb is None:
        return "gdb is not installed"
    result = subprocess.run(
        [gdb, "-batch", "-ex", "bt 40", "-ex", "thread apply all bt 30", sys.executable, str(core)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    return result.stdout[:40000]  # the crashing thread first


def summary_lines(figures: dict[str, Any]) -> list[str]:
    lines = [
        f"\n## Soak: bursts of {figures['burst']} on Kafka + Redis for"
        f" {figures['minutes']:g} min, core dumps on\n",
        f"- {figures['rounds']} bursts, {figures['reports']} reports:"
        f" {figures['completed']} completed, {figures['failed']} failed",
        f"- {figures['processes']} processes, **{figures['process_hours']} process-hours**,"
        f" **{len(figures['deaths'])} deaths**",
    ]
    for death in figures["deaths"]:
        lines.append(f"- `{death['process']}` exited with {death['returncode']}")
    return lines
