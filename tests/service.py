"""Run the real ``ai-pipeline serve`` as a subprocess on a free loopback port."""

from __future__ import annotations

import os
import signal
import socket
import ssl
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx


def _load_local_services() -> Any:
    """``scripts/local_services.py`` (Redis and Kafka for tests and benchmarks), by path:
    scripts/ is not a package."""
    import importlib.util

    path = Path(__file__).resolve().parents[1] / "scripts" / "local_services.py"
    spec = importlib.util.spec_from_file_location("local_services", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


local_services = _load_local_services()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class ServiceProcess:
    """``ai-pipeline serve`` by default; ``command=["agent", "triage"]`` runs an agent
    process, whose health and metrics are served on the port instead of the API."""

    def __init__(
        self,
        workdir: Path,
        env: dict[str, str] | None = None,
        command: list[str] | None = None,
    ):
        self.workdir = workdir
        self.command = command or ["serve"]
        self.health_path = "/api/v1/health" if self.command[0] == "serve" else "/health"
        self.port = free_port()
        # HTTPS when given a certificate: clients verify the service against it.
        cert = (env or {}).get("AI_PIPELINE_TLS_CERT_FILE")
        self.verify: ssl.SSLContext | bool = True
        if cert:
            self.verify = ssl.create_default_context(cafile=cert)
        self.url = f"{'https' if cert else 'http'}://127.0.0.1:{self.port}"
        self.db = workdir / "pipeline.db"
        self.log_path = workdir / f"{'-'.join(self.command)}-{self.port}.log"
        self.env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("AI_PIPELINE_")},
            "AI_PIPELINE_PORT": str(self.port),
            "AI_PIPELINE_BUS": f"sqlite:///{self.db}",
            "AI_PIPELINE_STATE": f"sqlite:///{self.db}",
            "AI_PIPELINE_RETRY_BASE_SECONDS": "0.05",
            "AI_PIPELINE_RETRY_MAX_SECONDS": "0.5",
            **(env or {}),
        }
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 60.0) -> ServiceProcess:
        with self.log_path.open("ab") as log:  # the child keeps its own descriptor
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "ai_pipeline.cli", *self.command, "--port", str(self.port)],
                cwd=self.workdir,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        self.wait_healthy(timeout)
        return self

    def wait_healthy(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc is not None
            if self.proc.poll() is not None:
                # A negative code is the signal that ended it (a native crash shows as -11/-6).
                raise RuntimeError(
                    f"service exited early with code {self.proc.returncode}:\n{self.log()[-3000:]}"
                )
            try:
                url = f"{self.url}{self.health_path}"
                if httpx.get(url, timeout=2, verify=self.verify).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise TimeoutError(f"service not healthy in {timeout}s:\n{self.log()[-3000:]}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def kill(self) -> None:
        """SIGKILL: no shutdown code runs, as when the machine loses the process."""
        if self.proc is not None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)
            self.proc = None

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
            self.proc = None

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=30, verify=self.verify)

    def __enter__(self) -> ServiceProcess:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()


def wait_until_terminal(
    client: httpx.Client,
    request_ids: list[str],
    timeout: float = 120.0,
    release_held: bool = False,
) -> dict[str, dict[str, Any]]:
    """Poll every request until it is completed or failed; returns the final documents.

    ``release_held``: release a request held for review as it stands (a maintainer keeping
    triage's values), as a report of the security review band always waits for one."""
    deadline = time.monotonic() + timeout
    final: dict[str, dict[str, Any]] = {}
    released: set[str] = set()
    while time.monotonic() < deadline:
        for rid in [r for r in request_ids if r not in final]:
            doc = client.get(f"/api/v1/requests/{rid}/status").json()
            if doc["status"] in ("completed", "failed"):
                final[rid] = doc
            elif release_held and doc["current_step"] == "review" and rid not in released:
                client.post(f"/api/v1/reviews/{rid}", json={}).raise_for_status()
                released.add(rid)
        if len(final) == len(request_ids):
            return final
        time.sleep(0.1)
    missing = [r for r in request_ids if r not in final]
    raise TimeoutError(f"{len(missing)} requests not finished, e.g. {missing[:3]}")
