"""The error envelope in the OpenAPI description: every operation documents the 4xx and 5xx
it can answer, with the one envelope schema.

FastAPI documents only a 422 per operation, with its own ``HTTPValidationError`` body, while
the service answers every error (that 422 included) with ``{"error": {…}}`` (see
``api.errors``). Found by the schemathesis run (tests/e2e/test_openapi_fuzz.py): a client
generated from the description would have failed to read any error.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI

SCHEMA_NAME = "ErrorEnvelope"
ENVELOPE: dict[str, Any] = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["code", "message", "details", "timestamp", "request_id"],
            "properties": {
                "code": {"type": "string", "examples": ["VALIDATION_ERROR"]},
                "message": {"type": "string"},
                "details": {"description": "what was wrong, e.g. one entry per invalid field"},
                "timestamp": {"type": "string", "format": "date-time"},
                "request_id": {
                    "type": ["string", "null"],
                    "description": "the correlation id, also in X-Request-ID",
                },
            },
        }
    },
}
# Any operation: missing or refused credentials, rate limits, failures inside or behind us.
ALWAYS = {
    401: "No valid API key",
    403: "The API key lacks the scope this operation needs",
    429: "Rate limit exceeded; see Retry-After and the X-RateLimit-* headers",
    500: "Internal error (logged; never a stack trace)",
    503: "A backing service is unavailable; retry",
}
WITH_INPUT = {422: "Invalid parameters or body"}
WITH_PATH_ID = {404: "No such resource"}
# The ingest endpoint reads a raw body (api.ingest): these come before any validation.
BODY = {
    400: "Body is not JSON, not a JSON object, or not valid UTF-8",
    413: "Body larger than AI_PIPELINE_MAX_BODY_BYTES",
    415: "Content-Type is not application/json",
}


def document_errors(app: FastAPI) -> None:
    """Make ``app``'s OpenAPI description name the error answers of every operation."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        document = generate()  # FastAPI caches it: the additions below run once
        schemas = document.setdefault("components", {}).setdefault("schemas", {})
        if SCHEMA_NAME not in schemas:
            schemas[SCHEMA_NAME] = ENVELOPE
            for operations in document.get("paths", {}).values():
                for operation in operations.values():
                    _add_errors(operation)
        return document

    app.openapi = openapi  # type: ignore[method-assign]


def _add_errors(operation: dict[str, Any]) -> None:
    parameters = operation.get("parameters", [])
    errors = dict(ALWAYS)
    if parameters or "requestBody" in operation:
        errors |= WITH_INPUT
    if any(p.get("in") == "path" for p in parameters):
        errors |= WITH_PATH_ID
    if "requestBody" in operation:
        errors |= BODY | WITH_INPUT
    responses = operation.setdefault("responses", {})
    reference = {"$ref": f"#/components/schemas/{SCHEMA_NAME}"}
    # Errors a route declares itself (e.g. 409 of the ingest route) carry the envelope too.
    for status, response in responses.items():
        if status[:1] in ("4", "5") and "content" not in response:
            response["content"] = {"application/json": {"schema": reference}}
    for status, description in errors.items():
        # Replaces FastAPI's own 422 (HTTPValidationError), which the service never sends.
        responses[str(status)] = {
            "description": description,
            "content": {"application/json": {"schema": reference}},
        }
