"""Routes of the loop with the reporter: their replies, their email opt-out, and the local
tracker's close and reopen (which flow back into each request's ``resolution``)."""

from __future__ import annotations

import html
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Header, Query, Request
from pydantic import BaseModel, ConfigDict, Field
from starlette.responses import HTMLResponse, Response

from ai_pipeline.adapters.trackers.local_conversation import (
    LocalConversationTracker,
    NoSuchIssue,
)
from ai_pipeline.agents.messages import to_topic
from ai_pipeline.api.errors import ApiError
from ai_pipeline.api.openapi_errors import SCHEMA_NAME
from ai_pipeline.api.rate_limits import HOUR, rate_headers, retry_after
from ai_pipeline.api.routes import container, json_response
from ai_pipeline.bootstrap import Container
from ai_pipeline.domain.events import Topic, utcnow
from ai_pipeline.domain.links import address_key
from ai_pipeline.domain.loop_events import MAX_REPLY, ReplyReceived
from ai_pipeline.domain.models import Text
from ai_pipeline.domain.replies import answered_by, reply_id
from ai_pipeline.domain.resolution import CloseReason
from ai_pipeline.loop_ports import IssueChange
from ai_pipeline.resolution import NotFiledYet, record_resolution
from ai_pipeline.triage.rules import request_for

router = APIRouter(prefix="/api/v1")
REPLIES_PATH = "/api/v1/requests/{request_id}/replies"
# The small pages of the unsubscribe link: nothing to load, nothing to run.
PAGE_POLICY = "default-src 'none'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"


def _error(description: str) -> dict[str, Any]:
    """An error answer for the OpenAPI description, in the one envelope."""
    schema = {"$ref": f"#/components/schemas/{SCHEMA_NAME}"}
    return {"description": description, "content": {"application/json": {"schema": schema}}}


NOT_YET: dict[int | str, dict[str, Any]] = {
    409: _error("The report is not filed yet, or its filing is being recorded: retry")
}


class Reply(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    text: Text = Field(min_length=1, max_length=MAX_REPLY)


class Close(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: CloseReason = CloseReason.COMPLETED
    duplicate_of: int | None = Field(default=None, ge=1)


class Comment(BaseModel):
    model_config = ConfigDict(extra="forbid")

    body: Text = Field(min_length=1, max_length=MAX_REPLY)


class Labels(BaseModel):
    model_config = ConfigDict(extra="forbid")

    add: list[Annotated[str, Field(min_length=1, max_length=50)]] = Field(
        default_factory=list, max_length=20
    )
    remove: list[Annotated[str, Field(min_length=1, max_length=50)]] = Field(
        default_factory=list, max_length=20
    )


@router.post(
    "/requests/{request_id}/replies",
    status_code=202,
    summary="The reporter answers: posted on the issue, once (X-Reply-Token, or a submit key)",
    responses=NOT_YET,
)
async def post_reply(
    request: Request,
    request_id: str,
    reply: Annotated[Reply, Body()],
    x_reply_token: Annotated[str | None, Header()] = None,
    idempotency_key: Annotated[str | None, Header(max_length=255)] = None,
) -> Response:
    c = container(request)
    if x_reply_token is not None:
        if not await c.loop.links.reply_token_matches(request_id, x_reply_token):
            raise ApiError(401, "the reply token is not valid for this request")
        by = "reporter"
    else:  # the guard let it through: a key with the submit scope, or an open service
        by = getattr(request.state, "api_key_id", None) or "open"
    await _within_reply_limit(c, request_id)
    conversation = await c.loop.store.get_conversation(request_id)
    if conversation is None:
        if await c.store.get(request_id) is None:
            raise ApiError(
                404, f"no request with id {request_id!r}", details={"request_id": request_id}
            )
        raise ApiError(
            409,
            "the report is not filed yet: reply once its issue exists",
            code="INVALID_REQUEST",
            details={"request_id": request_id},
        )
    event = ReplyReceived(
        request_id=request_id,
        reply_id=reply_id(request_id, reply.text, idempotency_key),
        text=reply.text,
        at=utcnow(),
        by=by,
    )
    await c.bus.publish([to_topic(Topic.REPLIES, request_id, event)])
    answered = answered_by(reply.text, conversation.remaining, conversation.reporter)
    remaining = [q for q in conversation.remaining if q not in answered]
    return json_response(
        {
            "request_id": request_id,
            "reply_id": event.reply_id,
            "status": "accepted",
            "message": "The reply will be posted on the issue",
            "questions_remaining": [request_for(q) for q in remaining],
            "links": {"status": f"/api/v1/requests/{request_id}/status"},
        },
        202,
    )


async def _within_reply_limit(c: Container, request_id: str) -> None:
    """Each reply is a comment posted by our account: a token must not become a way to
    flood an issue (or the tracker's rate limits)."""
    limit = c.settings.replies_per_request_per_hour
    if limit <= 0:
        return
    decision = await c.limiter.hit(f"replies:{request_id}", limit, HOUR)
    if not decision.allowed:
        headers = {**rate_headers(decision), "Retry-After": str(retry_after(decision))}
        raise ApiError(429, f"at most {limit} replies an hour to one report", headers=headers)


async def signed_address(
    request: Request,
    a: Annotated[str, Query(max_length=700)],
    s: Annotated[str, Query(max_length=100)],
) -> str:
    """The address an unsubscribe link names, once its signature is checked."""
    address = await container(request).loop.links.unsubscribed_address(a, s)
    if address is None:
        raise ApiError(400, "this unsubscribe link is not valid")
    return address


UNSUBSCRIBE: dict[str, Any] = {
    "response_class": HTMLResponse,
    "responses": {400: _error("The link is not valid (altered, or signed with another key)")},
}


@router.get("/unsubscribe", summary="The unsubscribe link of a notification email", **UNSUBSCRIBE)
async def unsubscribe_page(address: Annotated[str, Depends(signed_address)]) -> Response:
    # A page with a button, not the opt-out itself: mail scanners open every link.
    form = (
        f'<form method="post"><p>Stop notification emails to {html.escape(address)}?</p>'
        '<button type="submit">Unsubscribe</button></form>'
    )
    return _page("Unsubscribe", form)


@router.post(
    "/unsubscribe", summary="Opt out of notification emails (RFC 8058 one-click)", **UNSUBSCRIBE
)
async def unsubscribe(
    request: Request, address: Annotated[str, Depends(signed_address)]
) -> Response:
    await container(request).loop.store.opt_out(address_key(address), utcnow())
    return _page("Unsubscribed", f"<p>{html.escape(address)} will get no more email from us.</p>")


def _page(title: str, content: str) -> Response:
    body = (
        f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{title}</title>'
        f"</head><body><h1>{title}</h1>{content}</body></html>"
    )
    return HTMLResponse(
        body,
        headers={"Content-Security-Policy": PAGE_POLICY, "X-Content-Type-Options": "nosniff"},
    )


@router.post(
    "/issues/{number}/close", summary="Close a local issue (completed, not_planned, duplicate)"
)
async def close_issue(request: Request, number: int, close: Annotated[Close, Body()]) -> Response:
    c = container(request)
    local = _local(c)
    try:
        change = await local.close_issue(number, close.reason, "maintainer", close.duplicate_of)
    except NoSuchIssue:
        raise _no_issue(number) from None
    except ValueError as exc:
        raise ApiError(422, str(exc), details={"number": number}) from None
    return await _recorded(c, local, number, change)


@router.post("/issues/{number}/reopen", summary="Reopen a closed local issue", responses=NOT_YET)
async def reopen_issue(request: Request, number: int) -> Response:
    c = container(request)
    local = _local(c)
    try:
        change = await local.reopen_issue(number)
    except NoSuchIssue:
        raise _no_issue(number) from None
    return await _recorded(c, local, number, change)


@router.post("/issues/{number}/comments", status_code=201, summary="A maintainer's comment")
async def comment_issue(
    request: Request, number: int, comment: Annotated[Comment, Body()]
) -> Response:
    local = _local(container(request))
    try:
        comment_id = await local.comment(number, comment.body)
    except NoSuchIssue:
        raise _no_issue(number) from None
    return json_response({"number": number, "comment_id": comment_id}, 201)


@router.post("/issues/{number}/labels", summary="A maintainer adds or removes labels")
async def label_issue(request: Request, number: int, labels: Annotated[Labels, Body()]) -> Response:
    local = _local(container(request))
    try:
        issue = await local.label(number, labels.add, labels.remove)
    except NoSuchIssue:
        raise _no_issue(number) from None
    return json_response(issue.as_dict())


def _no_issue(number: int) -> ApiError:
    return ApiError(404, f"no local issue #{number}", details={"number": number})


def _local(c: Container) -> LocalConversationTracker:
    if c.loop.local is None:
        raise ApiError(
            404,
            "the local tracker is not in use: issues are filed on GitHub",
            code="INVALID_REQUEST",
        )
    return c.loop.local


async def _recorded(
    c: Container, local: LocalConversationTracker, number: int, change: IssueChange
) -> Response:
    requests: list[str] = []
    if change.resolution is not None:
        try:
            requests = await record_resolution(
                c.bus,
                c.loop.store,
                c.store,
                tracker=local.name,
                issue_number=number,
                resolution=change.resolution,
                source="local",
                requests=change.followers,
            )
        except NotFiledYet as exc:
            raise ApiError(409, f"{exc}: try again in a moment", code="INVALID_REQUEST") from None
    issue = local.tracker.get_issue(number)
    body = issue.as_dict() if issue is not None else {"number": number}
    return json_response({**body, "changed": change.changed, "requests": requests})
