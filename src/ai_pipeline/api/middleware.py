"""Pure ASGI middleware: a correlation id per HTTP request, and HTTP metrics.

Written against raw ASGI rather than BaseHTTPMiddleware, which costs a task and a
stream copy per request on the ingest hot path.
"""

from __future__ import annotations

import time
import uuid

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ai_pipeline.observability.metrics import Metrics

_HEADER = b"x-request-id"


class ObserveRequests:
    def __init__(self, app: ASGIApp, metrics: Metrics):
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        correlation = _incoming_id(scope) or uuid.uuid4().hex
        scope.setdefault("state", {})["correlation_id"] = correlation
        status = 500

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", []), (_HEADER, correlation.encode())]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            route = _route_template(scope)
            method = scope["method"]
            self.metrics.http_requests.labels(method, route, str(status)).inc()
            self.metrics.http_latency.labels(method, route).observe(time.perf_counter() - started)


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
