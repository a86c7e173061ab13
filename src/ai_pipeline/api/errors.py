"""The error envelope: every failure answers ``{"error": {code, message, details, ...}}``."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from ai_pipeline.api.openapi_errors import document_errors
from ai_pipeline.domain.errors import UnavailableError
from ai_pipeline.observability.logging import get_logger

log = get_logger(__name__)

CODES = {
    400: "INVALID_REQUEST",
    401: "UNAUTHORIZED",
    403: "FORBIDDEN",
    404: "REQUEST_NOT_FOUND",
    413: "PAYLOAD_TOO_LARGE",
    422: "VALIDATION_ERROR",
    429: "RATE_LIMIT_EXCEEDED",
    500: "INTERNAL_ERROR",
    503: "SERVICE_UNAVAILABLE",
}


INTERNAL_MESSAGE = "internal error; the failure was logged"


class ApiError(Exception):
    def __init__(
        self,
        status: int,
        message: str,
        code: str | None = None,
        details: Any = None,
        headers: dict[str, str] | None = None,
    ):
        super().__init__(message)
        self.status = status
        self.code = code or CODES.get(status, "INVALID_REQUEST")
        self.message = message
        self.details = details
        self.headers = headers or {}


def correlation_id(request: Request) -> str | None:
    value = getattr(request.state, "correlation_id", None)
    return value if isinstance(value, str) else None


def envelope_bytes(error: ApiError, correlation: str | None) -> bytes:
    body = {
        "error": {
            "code": error.code,
            "message": error.message,
            "details": error.details,
            "timestamp": datetime.now(UTC).isoformat(),
            "request_id": correlation,
        }
    }
    try:
        return orjson.dumps(body)
    except orjson.JSONEncodeError:
        # Details echo the client's values, and orjson refuses integers beyond 64 bits
        # (found by schemathesis: GET /api/v1/issues/<27 digits> answered 500).
        return json.dumps(body, default=str).encode()


def envelope(error: ApiError, request: Request) -> Response:
    return Response(
        envelope_bytes(error, correlation_id(request)),
        status_code=error.status,
        media_type="application/json",
        headers=error.headers,
    )


def validation_details(exc: ValidationError | RequestValidationError) -> list[dict[str, Any]]:
    details = []
    for err in exc.errors():
        loc = [str(p) for p in err.get("loc", ()) if p != "body"]
        details.append(
            {
                "field": ".".join(loc) or None,
                "message": err.get("msg", ""),
                "type": err.get("type", ""),
            }
        )
    return details


def install(app: FastAPI) -> None:
    document_errors(app)

    @app.exception_handler(ApiError)
    async def _api_error(request: Request, exc: ApiError) -> Response:
        return envelope(exc, request)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> Response:
        return envelope(
            ApiError(422, "the request's parameters are invalid", details=validation_details(exc)),
            request,
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> Response:
        return envelope(_from_http(exc, request), request)

    @app.exception_handler(UnavailableError)
    async def _unavailable(request: Request, exc: UnavailableError) -> Response:
        return envelope(unavailable(exc), request)

    @app.exception_handler(Exception)
    async def _crash(request: Request, exc: Exception) -> Response:
        log.error("unhandled_error", path=request.url.path, error_type=type(exc).__name__)
        return envelope(ApiError(500, INTERNAL_MESSAGE), request)


def unavailable(exc: UnavailableError) -> ApiError:
    """A backing service is down: the client should retry, and may safely (idempotency)."""
    log.warning("dependency_unavailable", error=str(exc)[:300])
    return ApiError(
        503,
        "a backing service is unavailable; retry shortly with the same id",
        headers={"Retry-After": "5"},
    )


def _from_http(exc: StarletteHTTPException, request: Request) -> ApiError:
    headers = dict(exc.headers or {})
    if exc.status_code == 404:
        # An unknown route, not an unknown request id: the code says the request was wrong.
        message = f"no such endpoint: {request.method} {request.url.path}"
        return ApiError(404, message, code="INVALID_REQUEST", headers=headers)
    if exc.status_code == 405:
        message = f"method {request.method} not allowed on {request.url.path}"
        return ApiError(405, message, code="INVALID_REQUEST", headers=headers)
    return ApiError(exc.status_code, str(exc.detail), headers=headers)
