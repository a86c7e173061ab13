"""Pure ASGI middleware: a correlation id per HTTP request, and HTTP metrics.

Written against raw ASGI rather than BaseHTTPMiddleware, which costs a task and a
stream copy per request on the ingest hot path.
"""

from __future__ import annotations

import itertools
import time
import uuid
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ai_pipeline.agents.priority import IngestPriority
from ai_pipeline.observability.metrics import Metrics

_HEADER = b"x-request-id"
_EVENT_STREAM = b"text/event-stream"


class ObserveRequests:
    def __init__(self, app: ASGIApp, metrics: Metrics, priority: IngestPriority):
        self.app = app
        self.metrics = metrics
        self.priority = priority
        self._children: dict[tuple[str, str, int], tuple[Any, Any]] = {}
        # A random process prefix and a counter: unique, and far cheaper than a UUID each.
        self._prefix = uuid.uuid4().hex[:12]
        self._sequence = itertools.count(1)

    def _next_id(self) -> str:
        return f"{self._prefix}-{next(self._sequence):x}"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        correlation = _incoming_id(scope) or self._next_id()
        scope.setdefault("state", {})["correlation_id"] = correlation
        status = 500
        streaming = False

        async def send_with_id(message: Message) -> None:
            nonlocal status, streaming
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = message.get("headers", [])
                message["headers"] = [*headers, (_HEADER, correlation.encode())]
                if any(k == b"content-type" and v.startswith(_EVENT_STREAM) for k, v in headers):
                    # A live stream stays open for minutes: it is answered once it starts.
                    # Counted then, it neither counts as a slow request against the latency
                    # SLO nor keeps the API "busy", throttling the agents, while it lasts.
                    streaming = True
                    self.priority.request_finished()
                    self._observe(scope["method"], _route_template(scope), status, started)
            await send(message)

        self.priority.request_started()
        try:
            await self.app(scope, receive, send_with_id)
        finally:
            if not streaming:
                self.priority.request_finished()
                self._observe(scope["method"], _route_template(scope), status, started)

    def _observe(self, method: str, route: str, status: int, started: float) -> None:
        # labels() costs a lock and a dict lookup per call: keep the children at hand.
        key = (method, route, status)
        children = self._children.get(key)
        if children is None:
            children = (
                self.metrics.http_requests.labels(method, route, str(status)),
                self.metrics.http_latency.labels(method, route),
            )
            self._children[key] = children
        children[0].inc()
        children[1].observe(time.perf_counter() - started)


def _incoming_id(scope: Scope) -> str | None:
    for name, value in scope.get("headers", []):
        if name == _HEADER:
            text: str = value.decode("latin-1")[:128]
            return text if text.isprintable() and text else None
    return None


def _route_template(scope: Scope) -> str:
    # The template, not the raw path: ids in paths would explode label cardinality.
    route = scope.get("route")
    path = getattr(route, "path", None)
    return path if isinstance(path, str) else "unmatched"
