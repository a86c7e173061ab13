"""A reporter's webhook receiver, as a careful one is written: it checks the signature
(``X-AI-Pipeline-Signature-256``), answers as told (fail the first N deliveries, hang),
and processes each delivery id once, counting the duplicates it was sent."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Received:
    delivery_id: str
    event: str
    body: dict[str, Any]
    signed: bool


@dataclass
class WebhookReceiver:
    secret: bytes
    fail_first: int = 0  # answer 503 to this many requests
    status_when_failing: int = 503
    hang_first: bool = False  # hold the first request until ``release`` is set
    received: list[Received] = field(default_factory=list)
    processed: dict[str, dict[str, Any]] = field(default_factory=dict)
    duplicates: int = 0
    release: threading.Event = field(default_factory=threading.Event)
    hanging: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                receiver.handle(self, raw)

            def log_message(self, *args: Any) -> None:
                return None

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_port}/hook"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    def handle(self, request: BaseHTTPRequestHandler, raw: bytes) -> None:
        expected = "sha256=" + hmac.new(self.secret, raw, hashlib.sha256).hexdigest()
        given = request.headers.get("X-AI-Pipeline-Signature-256", "")
        signed = hmac.compare_digest(expected, given)
        delivery = request.headers.get("X-AI-Pipeline-Delivery", "")
        event = request.headers.get("X-AI-Pipeline-Event", "")
        with self.lock:
            self.received.append(Received(delivery, event, json.loads(raw), signed))
            first = len(self.received) == 1
            failing = len(self.received) <= self.fail_first
        if first and self.hang_first:
            self.hanging.set()
            self.release.wait(60)
            return  # the sender is gone (killed): nothing to answer
        if not signed:
            return self._answer(request, 401)
        if failing:
            return self._answer(request, self.status_when_failing)
        with self.lock:
            if delivery in self.processed:
                self.duplicates += 1  # acknowledged, not processed again
            else:
                self.processed[delivery] = json.loads(raw)
        self._answer(request, 204)

    @staticmethod
    def _answer(request: BaseHTTPRequestHandler, status: int) -> None:
        request.send_response(status)
        request.send_header("Content-Length", "0")
        request.end_headers()

    def close(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()
