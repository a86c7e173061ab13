"""``POST /api/v1/webhooks/github``: GitHub's webhooks (the GitHub App mode), thin.

Authenticated by GitHub's signature, not by API keys (``api.auth`` leaves the path open);
mounted only while ``AI_PIPELINE_GITHUB_WEBHOOK_SECRET`` is set, so without it the route
does not exist (404). The signature is checked on the raw body before anything else is
looked at: an unsigned caller learns nothing but 401.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.responses import Response

from ai_pipeline.api.errors import ApiError
from ai_pipeline.api.routes import json_response
from ai_pipeline.github_webhooks import GitHubWebhooks

PATH = "/api/v1/webhooks/github"
router = APIRouter()


@router.post(
    PATH,
    status_code=202,
    summary="Receive a GitHub webhook (GitHub App mode)",
    responses={
        202: {"description": "Stored (or recognised as a redelivery), or ignored"},
        401: {"description": "X-Hub-Signature-256 missing or wrong"},
    },
)
async def github_webhook(request: Request) -> Response:
    webhooks: GitHubWebhooks = request.app.state.github_webhooks
    limit = webhooks.c.settings.max_body_bytes
    length = request.headers.get("content-length")
    if length is not None and length.isdigit() and int(length) > limit:
        raise ApiError(413, f"body larger than {limit} bytes")
    body = await request.body()
    if len(body) > limit:
        raise ApiError(413, f"body larger than {limit} bytes")
    delivery = request.headers.get("x-github-delivery")
    webhooks.verify(body, request.headers.get("x-hub-signature-256"), delivery)
    event = request.headers.get("x-github-event")
    if not event or not delivery:
        raise ApiError(400, "X-GitHub-Event and X-GitHub-Delivery are required")
    if (request.headers.get("content-type") or "").split(";")[0].strip() != "application/json":
        raise ApiError(415, "set the webhook's content type to application/json")
    received = await webhooks.receive(event, delivery, body)
    return json_response(received.body(event, delivery), 202)
