"""A distributed deployment on one machine: real processes on real Kafka and Redis.

    fleet = Fleet(tmp_path, kafka_broker, redis_server, github=gh, triage_agents=3)
    fleet.start()            # API (role api, with the coordinator) and one process per agent
    fleet.submit(reports)    # every report accepted, retried through outages
    fleet.wait_all_done()    # until no request is active
    fleet.stop()

Each fleet gets its own topic and key prefix, so tests share one broker and one Redis.
"""

from __future__ import annotations

import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx

from tests.fakes.github_server import UNPACED, FakeGitHub
from tests.service import ServiceProcess

TOKEN = "ghp_" + "fleet0token" * 4


class Fleet:
    def __init__(
        self,
        workdir: Path,
        kafka_broker: Any,
        redis_server: Any,
        github: FakeGitHub,
        triage_agents: int = 3,
        env: dict[str, str] | None = None,
    ):
        self.prefix = f"f{uuid.uuid4().hex[:10]}."
        self.env = {
            "AI_PIPELINE_BUS": f"kafka://{kafka_broker.bootstrap}",
            "AI_PIPELINE_STATE": redis_server.url,
            "AI_PIPELINE_KAFKA_TOPIC_PREFIX": self.prefix,
            "AI_PIPELINE_REDIS_KEY_PREFIX": self.prefix,
            # The smallest session the broker allows: a killed member is noticed in seconds.
            "AI_PIPELINE_KAFKA_SESSION_TIMEOUT_MS": "6000",
            "AI_PIPELINE_KAFKA_METADATA_REFRESH_MS": "5000",
            "AI_PIPELINE_TRACKER": "github",
            "AI_PIPELINE_GITHUB_TOKEN": TOKEN,
            "AI_PIPELINE_GITHUB_REPOSITORY": github.repository,
            "AI_PIPELINE_GITHUB_API_URL": github.url,
            # GitHub's pacing (80 a minute, 500 an hour) is tested on its own; a fleet
            # filing 1,000 issues in a minute would otherwise wait two hours.
            **UNPACED,
            "AI_PIPELINE_LOG_LEVEL": "WARNING",
            **(env or {}),
        }
        self.workdir = workdir
        self.api = ServiceProcess(workdir, self.env, ["serve", "--role", "api"])
        self.agents: dict[str, list[ServiceProcess]] = {
            "triage": [self._agent("triage") for _ in range(triage_agents)],
            "ticket-creation": [self._agent("ticket-creation")],
            "github-api": [self._agent("github-api")],
        }

    def _agent(self, name: str) -> ServiceProcess:
        return ServiceProcess(self.workdir, self.env, ["agent", name])

    @property
    def processes(self) -> list[ServiceProcess]:
        return [self.api, *(p for group in self.agents.values() for p in group)]

    def start(self, timeout: float = 120.0) -> Fleet:
        # The API first: it creates the topics the agents subscribe to.
        self.api.start(timeout)
        agents = [p for group in self.agents.values() for p in group]
        with ThreadPoolExecutor(len(agents)) as pool:
            list(pool.map(lambda p: p.start(timeout), agents))
        return self

    def stop(self) -> None:
        for process in self.processes:
            process.stop()

    def logs(self) -> str:
        return "\n".join(f"--- {p.log_path.name}\n{p.log()[-2000:]}" for p in self.processes)

    def client(self) -> httpx.Client:
        return self.api.client()

    def submit(self, reports: list[dict[str, Any]], threads: int = 8) -> dict[str, str]:
        """Post every report until it is accepted (the same id is idempotent); id → request."""
        accepted: dict[str, str] = {}
        lock = threading.Lock()

        def post(report: dict[str, Any]) -> None:
            deadline = time.monotonic() + 200
            last = "nothing sent"
            while time.monotonic() < deadline:
                try:
                    r = httpx.post(f"{self.api.url}/api/v1/bug-reports", json=report, timeout=60)
                except httpx.HTTPError as error:
                    last = repr(error)
                    time.sleep(0.5)
                    continue
                if r.status_code in (200, 201):
                    with lock:
                        accepted[str(report["id"])] = r.json()["request_id"]
                    return
                last = f"{r.status_code} {r.text[:300]}"
                time.sleep(0.5)
            self._fail_if_the_api_died(f"report {report['id']} never accepted; last: {last}")
            raise TimeoutError(f"report {report['id']} never accepted; last answer: {last}")

        with ThreadPoolExecutor(threads) as pool:
            list(pool.map(post, reports))
        return accepted

    def _fail_if_the_api_died(self, context: str = "") -> None:
        """The API died under us (a native crash shows as -11): say so at once, with its
        log, instead of waiting out a timeout on "connection refused"."""
        api = self.api.proc
        if api is not None and api.poll() is not None:
            raise RuntimeError(
                f"{context}; the API process exited with {api.returncode}:\n"
                f"{self.api.log()[-6000:]}\n{self.logs()}"
            )

    def count(self, status: str) -> int:
        with self.client() as client:
            body = client.get("/api/v1/requests", params={"status": status, "limit": 1}).json()
        return int(body["pagination"]["total"])

    def wait_all_done(self, expected: int, timeout: float = 600.0) -> None:
        """Until ``expected`` requests ended and none is active."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                ended = self.count("completed") + self.count("failed")
                if ended >= expected and self.count("active") == 0:
                    return
            except (httpx.HTTPError, KeyError):
                self._fail_if_the_api_died()
            time.sleep(0.5)
        with self.client() as client:
            active = client.get("/api/v1/requests", params={"limit": 100}).json()["requests"]
        waiting = Counter(f"{s['current_step']}:{s['status']}" for s in active)
        raise TimeoutError(
            f"not done in {timeout:.0f}s: {self.count('completed')} completed,"
            f" {self.count('failed')} failed, {self.count('active')} active"
            f" (first 100 by step: {dict(waiting)}; e.g. {active[:2]})\n{self.logs()}"
        )

    def all_requests(self) -> list[dict[str, Any]]:
        with self.client() as client:
            return all_requests(client)

    def cli(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        """``ai-pipeline ARGS`` with this fleet's settings, output captured."""
        return subprocess.run(
            [sys.executable, "-m", "ai_pipeline.cli", *args],
            env=self.api.env,
            cwd=self.workdir,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )


def all_requests(client: httpx.Client) -> list[dict[str, Any]]:
    """GET /requests?status=all, every page, as the API shows them."""
    found: list[dict[str, Any]] = []
    while True:
        page = client.get(
            "/api/v1/requests", params={"status": "all", "limit": 100, "offset": len(found)}
        ).json()
        found.extend(page["requests"])
        if not page["pagination"]["has_more"]:
            return found
