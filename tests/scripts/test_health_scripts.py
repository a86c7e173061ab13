"""The runbook's daily scripts run for real against a live local service.

scripts/morning-health-check.sh, scripts/evening-summary.sh and scripts/capacity-planning.sh:
each passes on a service that is doing well and exits non-zero on one that is not (stopped,
failing requests, lag growing); with --target kubectl each asks a recording `kubectl`
stand-in for the right things; and each is clean under `shellcheck -x`.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import REPO
from tests.factories import report_dict
from tests.fakes.github_server import FakeGitHub, run_fake_github
from tests.service import ServiceProcess, wait_until_terminal

pytestmark = pytest.mark.e2e

SCRIPTS = REPO / "scripts"
HEALTH_SCRIPTS = ["morning-health-check.sh", "evening-summary.sh", "capacity-planning.sh"]
TOKEN = "ghp_" + "scripts0token" * 3
# The service records its daily counters every lag interval.
FAST = {"AI_PIPELINE_LAG_INTERVAL_SECONDS": "0.2"}


def base_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("AI_PIPELINE_")}


def service_env(svc: ServiceProcess) -> dict[str, str]:
    """What an operator's shell has: the service's settings and its URL."""
    own = {k: v for k, v in svc.env.items() if k.startswith("AI_PIPELINE_")}
    return {**own, "AI_PIPELINE_URL": svc.url}


def run_script(
    name: str, *args: str, env: dict[str, str], timeout: float = 180
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", str(SCRIPTS / name), *args],
        env={**base_env(), **env},
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def output(result: subprocess.CompletedProcess[str]) -> str:
    return result.stdout + result.stderr


def daily_figures(svc: ServiceProcess) -> dict[str, Any] | None:
    result = subprocess.run(
        [sys.executable, "-m", "ai_pipeline.cli", "report", "daily", "--json"],
        env={**base_env(), **service_env(svc)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    return json.loads(result.stdout) if result.returncode == 0 else None


def wait_for_daily(svc: ServiceProcess, processed: int, timeout: float = 60) -> dict[str, Any]:
    """Until the stored counters show ``processed`` requests ended today."""
    deadline = time.monotonic() + timeout
    figures = None
    while time.monotonic() < deadline:
        figures = daily_figures(svc)
        if figures is not None and figures["reports_processed"] >= processed:
            return figures
        time.sleep(0.3)
    raise TimeoutError(f"daily counters never showed {processed} processed: {figures}")


def submit(svc: ServiceProcess, count: int) -> dict[str, dict[str, Any]]:
    with svc.client() as client:
        ids = [
            client.post("/api/v1/bug-reports", json=report_dict()).json()["request_id"]
            for _ in range(count)
        ]
        return wait_until_terminal(client, ids)


@pytest.fixture(scope="module")
def healthy(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServiceProcess]:
    """A service that filed three reports on the local tracker."""
    with ServiceProcess(tmp_path_factory.mktemp("healthy"), FAST) as svc:
        final = submit(svc, 3)
        assert {d["status"] for d in final.values()} == {"completed"}
        wait_for_daily(svc, 3)
        yield svc


@pytest.fixture(scope="module")
def failing(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServiceProcess]:
    """A service whose GitHub refused two of four issues (422): half the requests failed."""
    gh: FakeGitHub
    with run_fake_github(token=TOKEN) as gh:
        gh.validation_error_next(field="labels", times=2)
        env = {
            **FAST,
            "AI_PIPELINE_TRACKER": "github",
            "AI_PIPELINE_GITHUB_TOKEN": TOKEN,
            "AI_PIPELINE_GITHUB_REPOSITORY": gh.repository,
            "AI_PIPELINE_GITHUB_API_URL": gh.url,
        }
        with ServiceProcess(tmp_path_factory.mktemp("failing"), env) as svc:
            final = submit(svc, 4)
            assert sorted(d["status"] for d in final.values()) == [
                "completed",
                "completed",
                "failed",
                "failed",
            ]
            wait_for_daily(svc, 4)
            yield svc


# --- morning health check -------------------------------------------------------------


def test_morning_check_passes_on_a_healthy_service(healthy: ServiceProcess) -> None:
    result = run_script("morning-health-check.sh", "--target", "local", env=service_env(healthy))
    text = output(result)
    assert result.returncode == 0, text
    assert "health: healthy" in text
    for component in ("coordinator_agent", "triage_agent", "github_api_agent", "state", "bus"):
        assert f"  {component}: healthy" in text
    assert "last 24 h: 3 requests, 0 failed, success rate 1" in text
    assert "dead letters: 0 (maximum 0)" in text
    assert "consumer lag: 0 (maximum 1000)" in text
    assert "morning check passed" in text


def test_morning_check_fails_when_the_service_is_stopped(tmp_path: Path) -> None:
    svc = ServiceProcess(tmp_path).start()
    svc.stop()
    result = run_script("morning-health-check.sh", "--target", "local", env=service_env(svc))
    assert result.returncode == 1, output(result)
    assert "service unreachable" in output(result)
    assert "morning check passed" not in output(result)


def test_morning_check_fails_on_failed_requests_and_dead_letters(failing: ServiceProcess) -> None:
    result = run_script("morning-health-check.sh", "--target", "local", env=service_env(failing))
    text = output(result)
    assert result.returncode == 1, text
    assert "last 24 h: 4 requests, 2 failed, success rate 0.5" in text
    assert "success rate 0.5 below 0.999" in text
    dead = re.search(r"dead letters: (\d+) \(maximum 0", text)
    assert dead is not None and int(dead.group(1)) >= 1, text
    assert "morning check FAILED" in text


def test_morning_check_thresholds_are_flags(failing: ServiceProcess) -> None:
    result = run_script(
        "morning-health-check.sh",
        "--target",
        "local",
        "--min-success-rate",
        "0.5",
        "--max-dead-letters",
        "100",
        env=service_env(failing),
    )
    assert result.returncode == 0, output(result)


# --- evening summary ------------------------------------------------------------------


def test_evening_summary_prints_every_figure_of_a_good_day(healthy: ServiceProcess) -> None:
    result = run_script("evening-summary.sh", "--target", "local", env=service_env(healthy))
    text = output(result)
    assert result.returncode == 0, text
    figures = daily_figures(healthy)
    assert figures is not None
    assert "Reports processed:         3 (3 completed, 0 failed)" in text
    assert "Success rate:              100.000 %" in text
    assert re.search(r"Average processing time:   [\d.]+ ms \(p95 [\d.]+ ms\)", text), text
    assert "Errors:                    0 (error rate 0.000 %)" in text
    assert re.search(r"API response time:         average [\d.]+ ms, p95 [\d.]+ ms", text), text
    assert figures["bus_messages"] > 0 and figures["store_operations"] > 0
    assert re.search(r"Bus messages:              [1-9]\d*\n", text), text
    assert re.search(r"State-store operations:    [1-9]\d*\n", text), text
    assert "LLM calls:                 0 (the local triage engine makes none)" in text
    assert "within objectives" in text


def test_evening_summary_fails_when_the_error_rate_is_above_the_objective(
    failing: ServiceProcess,
) -> None:
    result = run_script("evening-summary.sh", "--target", "local", env=service_env(failing))
    text = output(result)
    assert result.returncode == 1, text
    assert "Reports processed:         4 (2 completed, 2 failed)" in text
    assert "Errors:                    2 (error rate 50.000 %)" in text
    assert "above the objective 0.100 %" in text
    relaxed = run_script(
        "evening-summary.sh",
        "--target",
        "local",
        "--max-error-rate",
        "0.6",
        env=service_env(failing),
    )
    assert relaxed.returncode == 0, output(relaxed)


def test_evening_summary_fails_when_the_day_has_no_report(healthy: ServiceProcess) -> None:
    result = run_script(
        "evening-summary.sh", "--target", "local", "--date", "2001-01-01", env=service_env(healthy)
    )
    assert result.returncode == 1, output(result)
    assert "no daily report for 2001-01-01" in output(result)


# --- capacity planning ----------------------------------------------------------------


def test_capacity_planning_measures_rates_and_projects_triage_agents(
    healthy: ServiceProcess,
) -> None:
    result = run_script(
        "capacity-planning.sh",
        "--target",
        "local",
        "--interval",
        "1",
        "--target-rate",
        "50",
        env=service_env(healthy),
    )
    text = output(result)
    assert result.returncode == 0, text
    assert re.search(r"accepted: +[\d.]+", text), text
    assert re.search(r"triage_agent +[\d.]+/s +avg +[\d.]+ ms", text), text
    assert 'kafka_consumer_lag_sum{group="triage-agent-group",topic="bug-reports"} 0.0' in text
    assert healthy.proc is not None and f"pid {healthy.proc.pid} " in text
    assert re.search(r"triage agents for 50 reports/s: \d+ \(running 1;", text), text
    assert "lag: 0 → 0" in text


def test_capacity_planning_fails_when_lag_grows(tmp_path: Path) -> None:
    # Once run with every agent, the triage group exists; an API-only process then leaves
    # the bug-reports topic unconsumed, so every report submitted adds to the lag.
    ServiceProcess(tmp_path, FAST).start().stop()
    with ServiceProcess(tmp_path, FAST, command=["serve", "--role", "api"]) as svc:
        done = threading.Event()

        def keep_submitting() -> None:
            with httpx.Client(base_url=svc.url, timeout=10) as client:
                while not done.is_set():
                    client.post("/api/v1/bug-reports", json=report_dict())
                    time.sleep(0.02)

        sender = threading.Thread(target=keep_submitting)
        sender.start()
        try:
            result = run_script(
                "capacity-planning.sh",
                "--target",
                "local",
                "--interval",
                "2",
                "--max-lag-growth",
                "5",
                env=service_env(svc),
            )
        finally:
            done.set()
            sender.join(30)
    text = output(result)
    assert result.returncode == 1, text
    assert re.search(r"lag: \d+ → \d+ \(grew \d+ > 5 in 2s\): agents do not keep up", text), text


# --- the kubectl path -----------------------------------------------------------------

HEALTH = {
    "status": "healthy",
    "components": {
        name: {"status": "healthy"}
        for name in (
            "coordinator_agent",
            "triage_agent",
            "ticket_creation_agent",
            "github_api_agent",
        )
    }
    | {"bus": {"status": "healthy"}, "state": {"status": "healthy"}, "llm": {"status": "disabled"}},
}
METRICS_24H = {"requests": {"total": 10, "completed": 10, "failed": 0}, "success_rate": 1}
PROMETHEUS = "\n".join(
    [
        "# TYPE ai_pipeline_requests_total counter",
        "ai_pipeline_requests_total 10.0",
        'ai_pipeline_agent_handled_total{agent="triage_agent"} 10.0',
        'ai_pipeline_agent_handling_seconds_count{agent="triage_agent"} 10.0',
        'ai_pipeline_agent_handling_seconds_sum{agent="triage_agent"} 0.5',
        'kafka_consumer_lag_sum{group="triage-agent-group",topic="bug-reports"} 3.0',
        "",
    ]
)
DAILY = {
    "date": "2026-01-02",
    "reports_accepted": 10,
    "reports_processed": 10,
    "completed": 10,
    "failed": 0,
    "success_rate": 1.0,
    "errors": 0,
    "error_rate": 0.0,
    "average_processing_seconds": 0.05,
    "p95_processing_seconds": 0.09,
    "http_requests": 20,
    "http_errors": 0,
    "average_response_seconds": 0.004,
    "p95_response_seconds": 0.01,
    "bus_messages": 70,
    "store_operations": 90,
    "llm_calls": 0,
}
CANNED = {
    "/api/v1/health": json.dumps(HEALTH),
    "/api/v1/metrics?period=24h": json.dumps(METRICS_24H),
    "/metrics": PROMETHEUS,
    "dead-letters": "[]",
    "report": json.dumps(DAILY),
    "top": (
        "NAME                  CPU(cores)   MEMORY(bytes)\n"
        "triage-agent-7d9f-x   120m         150Mi\n"
    ),
    "get triage-agent": "3",
    "get ai-pipeline": "",
}
STAND_IN = f"""#!{sys.executable}
import json, os, sys
args = sys.argv[1:]
with open(os.environ["KUBECTL_LOG"], "a") as log:
    log.write(json.dumps(args) + "\\n")
canned = json.loads(open(os.environ["KUBECTL_CANNED"]).read())
key = None
if "--" in args:
    command = args[args.index("--") + 1 :]
    key = command[-1] if command[0] == "python" else command[1]
elif "top" in args:
    key = "top"
elif "get" in args:
    key = "get " + args[args.index("get") + 2]
if key not in canned:
    sys.stderr.write("kubectl stand-in: nothing canned for %r\\n" % (args,))
    sys.exit(1)
sys.stdout.write(canned[key])
"""


@pytest.fixture
def kubectl(tmp_path: Path) -> tuple[dict[str, str], Path]:
    """A `kubectl` first on PATH that records its arguments and answers canned output."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    stand_in = bin_dir / "kubectl"
    stand_in.write_text(STAND_IN)
    stand_in.chmod(0o755)
    log = tmp_path / "kubectl.log"
    canned = tmp_path / "canned.json"
    canned.write_text(json.dumps(CANNED))
    env = {
        "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
        "KUBECTL_LOG": str(log),
        "KUBECTL_CANNED": str(canned),
    }
    return env, log


def calls(log: Path) -> list[list[str]]:
    return [json.loads(line) for line in log.read_text().splitlines()]


EXEC = ["-n", "ai-pipeline", "exec", "deploy/ai-pipeline", "--"]


def test_morning_check_on_kubectl_reads_health_metrics_and_dead_letters_in_the_pod(
    kubectl: tuple[dict[str, str], Path],
) -> None:
    env, log = kubectl
    result = run_script("morning-health-check.sh", "--target", "kubectl", env=env)
    assert result.returncode == 0, output(result)
    made = calls(log)
    gets = [c[-1] for c in made if c[: len(EXEC) + 1] == [*EXEC, "python"]]
    assert gets == ["/api/v1/health", "/api/v1/metrics?period=24h", "/metrics"]
    assert [*EXEC, "ai-pipeline", "dead-letters", "--json", "--limit", "1000"] in made
    assert "consumer lag: 3 (maximum 1000)" in output(result)


def test_morning_check_on_kubectl_detects_the_target_by_the_deployment(
    kubectl: tuple[dict[str, str], Path],
) -> None:
    env, log = kubectl
    result = run_script("morning-health-check.sh", env=env)
    assert result.returncode == 0, output(result)
    assert calls(log)[0] == ["-n", "ai-pipeline", "get", "deployment", "ai-pipeline"]
    assert "Morning health check (kubectl" in output(result)


def test_evening_summary_on_kubectl_runs_report_daily_in_the_pod(
    kubectl: tuple[dict[str, str], Path],
) -> None:
    env, log = kubectl
    result = run_script(
        "evening-summary.sh", "--target", "kubectl", "--date", "2026-01-02", env=env
    )
    assert result.returncode == 0, output(result)
    assert calls(log) == [
        [*EXEC, "ai-pipeline", "report", "daily", "--date", "2026-01-02", "--json"]
    ]
    assert "Reports processed:         10 (10 completed, 0 failed)" in result.stdout


def test_capacity_planning_on_kubectl_uses_top_pods_and_the_triage_replicas(
    kubectl: tuple[dict[str, str], Path],
) -> None:
    env, log = kubectl
    result = run_script(
        "capacity-planning.sh",
        "--target",
        "kubectl",
        "--interval",
        "1",
        "--target-rate",
        "100",
        env=env,
    )
    text = output(result)
    assert result.returncode == 0, text
    made = calls(log)
    assert ["-n", "ai-pipeline", "top", "pods"] in made
    assert [
        "-n",
        "ai-pipeline",
        "get",
        "deployment",
        "triage-agent",
        "-o",
        "jsonpath={.spec.replicas}",
    ] in made
    assert [c[-1] for c in made if c[: len(EXEC)] == EXEC] == ["/metrics", "/metrics"]
    assert "triage-agent-7d9f-x   120m" in text
    # 50 ms per report at 70 % busy: 100 reports/s need ceil(100 * 0.05 / 0.7) = 8 agents.
    assert "triage agents for 100 reports/s: 8 (running 3;" in text
    assert "lag: 3 → 3" in text
