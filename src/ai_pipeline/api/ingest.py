"""``POST /api/v1/bug-reports``: the hot path, served as raw ASGI.

Every report passes here, so it skips the framework's per-request machinery (dependency
solving, exit stacks, exception-middleware wrapping): the route declared in ``routes.py``
documents the endpoint in OpenAPI and shares ``accept`` below, and this middleware answers
the requests before the router sees them. Errors still use the one envelope.
"""

from __future__ import annotations

from types import SimpleNamespace

import orjson
from pydantic import ValidationError
from starlette.types import ASGIApp, Receive, Scope, Send

from ai_pipeline.api.errors import (
    INTERNAL_MESSAGE,
    ApiError,
    envelope_bytes,
    unavailable,
    validation_details,
)
from ai_pipeline.bootstrap import Container
from ai_pipeline.domain.errors import UnavailableError
from ai_pipeline.domain.github import is_reserved, is_reserved_key
from ai_pipeline.domain.models import BugReport
from ai_pipeline.domain.submissions import IdConflict, scope_of
from ai_pipeline.observability.logging import get_logger
from ai_pipeline.settings import Settings
from ai_pipeline.submission import Submission

log = get_logger(__name__)
PATH = "/api/v1/bug-reports"
ROUTE = SimpleNamespace(path=PATH)  # what the metrics middleware labels the request with


def parse_report(body: bytes) -> BugReport:
    try:
        report = BugReport.model_validate_json(body)
    except ValidationError as exc:
        details = validation_details(exc)
        if any(d["type"] == "json_invalid" for d in details):
            raise ApiError(400, "body is not valid JSON", details=details) from None
        if any(d["type"] == "model_type" and d["field"] is None for d in details):
            raise ApiError(400, "body must be a JSON object", details=details) from None
        raise ApiError(422, "the bug report is invalid", details=details) from None
    if is_reserved(report.id):
        # Such ids name issues opened on GitHub: only its verified webhooks create them.
        raise ApiError(
            422,
            "the bug report is invalid",
            details=[
                {
                    "field": "id",
                    "message": "ids starting with 'gh:' are reserved",
                    "type": "reserved",
                }
            ],
        )
    return report


def check_headers(content_type: str | None, content_length: str | None, limit: int) -> None:
    if (content_type or "").split(";")[0].strip().lower() != "application/json":
        raise ApiError(415, "Content-Type must be application/json", code="INVALID_REQUEST")
    if content_length is not None and content_length.isdigit() and int(content_length) > limit:
        raise ApiError(413, f"body larger than {limit} bytes")


def check_notify(report: BugReport, settings: Settings) -> None:
    """A report may ask only for the notifications this service can send."""
    notify = report.notify
    refused = []
    if notify is not None and notify.webhook is not None and settings.notify_webhook_secret is None:
        refused.append(("notify.webhook", "webhook notifications are not enabled on this service"))
    if notify is not None and notify.email and not settings.smtp_url:
        refused.append(("notify.email", "email notifications are not enabled on this service"))
    if refused:
        details = [{"field": f, "message": m, "type": "notify_unavailable"} for f, m in refused]
        raise ApiError(422, "the bug report is invalid", details=details)


def check_idempotency_key(key: str | None) -> str | None:
    if key is not None and not (0 < len(key) <= 255 and key.isprintable()):
        raise ApiError(400, "Idempotency-Key must be 1 to 255 printable characters")
    if key is not None and is_reserved_key(key):
        raise ApiError(400, "Idempotency-Key values starting with 'github-delivery:' are reserved")
    return key


async def accept(
    container: Container, body: bytes, idempotency_key: str | None, key_id: str | None
) -> tuple[int, bytes, dict[str, str]]:
    """Validate and submit in the scope of ``key_id`` (the caller's API key, None while the
    service is open); (status, JSON body, headers) of the answer."""
    report = parse_report(body)
    check_notify(report, container.settings)
    key = check_idempotency_key(idempotency_key)
    try:
        outcome = await Submission(container).submit(report, key, scope_of(key_id))
    except IdConflict as conflict:
        field = "id" if conflict.kind == "id" else "Idempotency-Key"
        details = {"field": field, "value": conflict.value, "request_id": conflict.request_id}
        raise ApiError(409, str(conflict), code="INVALID_REQUEST", details=details) from None
    state = outcome.state
    base = f"/api/v1/requests/{state.request_id}"
    answer = {
        "request_id": state.request_id,
        "status": state.status.value,
        "message": outcome.message,
        "estimated_processing_time": outcome.estimate,
        "links": {"status": f"{base}/status", "self": base, "replies": f"{base}/replies"},
        # Authorises the reporter's answers (POST …/replies, X-Reply-Token); never stored.
        "reply_token": await container.loop.links.reply_token(state.request_id),
    }
    return 201 if outcome.created else 200, orjson.dumps(answer), {"location": f"{base}/status"}


class IngestFastPath:
    def __init__(self, app: ASGIApp, container: Container):
        self.app = app
        self.container = container

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] != PATH or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        scope["route"] = ROUTE
        headers = _headers(scope)
        limit = self.container.settings.max_body_bytes
        try:
            check_headers(headers.get("content-type"), headers.get("content-length"), limit)
            body = await _read_body(receive, limit)
            status, payload, extra = await accept(
                self.container, body, headers.get("idempotency-key"), api_key_id(scope)
            )
        except ApiError as error:
            status, payload, extra = failure(scope, error)
        except UnavailableError as exc:
            status, payload, extra = failure(scope, unavailable(exc))
        except Exception as exc:  # outside FastAPI: no server-error middleware catches it
            log.error("unhandled_error", path=PATH, error_type=type(exc).__name__)
            status, payload, extra = failure(scope, ApiError(500, INTERNAL_MESSAGE))
        await respond(send, status, payload, extra)


def api_key_id(scope: Scope) -> str | None:
    """The caller's key id, as the guard recorded it (None while the service is open)."""
    key_id = scope.get("state", {}).get("api_key_id")
    return key_id if isinstance(key_id, str) else None


def failure(scope: Scope, error: ApiError) -> tuple[int, bytes, dict[str, str]]:
    correlation = scope.get("state", {}).get("correlation_id")
    return error.status, envelope_bytes(error, correlation), error.headers


def _headers(scope: Scope) -> dict[str, str]:
    wanted = (b"content-type", b"content-length", b"idempotency-key")
    return {k.decode(): v.decode("latin-1") for k, v in scope["headers"] if k in wanted}


async def _read_body(receive: Receive, limit: int) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ApiError(400, "the client went away before sending the whole body")
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise ApiError(413, f"body larger than {limit} bytes")
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


async def respond(send: Send, status: int, payload: bytes, headers: dict[str, str]) -> None:
    raw = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(payload)).encode()),
        *((k.lower().encode(), v.encode("latin-1")) for k, v in headers.items()),
    ]
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": payload})
