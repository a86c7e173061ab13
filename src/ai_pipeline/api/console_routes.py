"""Routes the web console needs beyond the API contract (any client may use them):
duplicate hints while typing, a request's live updates, and the review queue."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Annotated

import orjson
from fastapi import APIRouter, Body, Query, Request
from pydantic import ValidationError
from starlette.background import BackgroundTask
from starlette.responses import Response, StreamingResponse

from ai_pipeline.api.auth import Refused
from ai_pipeline.api.disclosure import Disclosure, admin
from ai_pipeline.api.errors import ApiError
from ai_pipeline.api.rate_limits import Limits
from ai_pipeline.api.routes import container, disclosed, json_response
from ai_pipeline.api.streams import StreamSlots
from ai_pipeline.domain.api_keys import READ
from ai_pipeline.domain.request_state import RequestState
from ai_pipeline.domain.review import Correction
from ai_pipeline.duplicate_hints import DuplicateHints
from ai_pipeline.ports import ApiKey
from ai_pipeline.review_queue import NotFound, NotHeld, ReviewQueue

router = APIRouter(prefix="/api/v1")

# How often a live stream looks at the request, and says it is alive between changes
# (proxies close idle connections; a comment line keeps them open).
POLL_SECONDS = 0.5
KEEP_ALIVE_SECONDS = 15.0
# A stream ends after this long even if the request has not: the client reconnects.
STREAM_SECONDS = 600.0


def _not_found(request_id: str) -> ApiError:
    return ApiError(404, f"no request with id {request_id!r}", details={"request_id": request_id})


@router.get(
    "/duplicate-candidates",
    summary="Filed issues like a report being written (hints while typing a title)",
)
async def duplicate_candidates(
    request: Request,
    title: Annotated[str, Query(max_length=500)],
    description: Annotated[str, Query(max_length=5000)] = "",
    limit: Annotated[int, Query(ge=1, le=10)] = 5,
) -> Response:
    hints: DuplicateHints = request.app.state.duplicate_hints
    return json_response({"candidates": await hints.candidates(title, description, limit)})


@router.get(
    "/requests/{request_id}/events",
    summary="A request's status document, streamed at every change (server-sent events)",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/event-stream": {}}}},
)
async def request_events(request: Request, request_id: str) -> Response:
    c = container(request)
    store = c.store
    state = await store.get(request_id)
    if state is None:
        raise _not_found(request_id)
    key: ApiKey | None = request.scope.get("state", {}).get("api_key")
    address = request.client.host if request.client else None
    slots: StreamSlots = request.app.state.stream_slots
    release = slots.take(key.key_id if key else f"address:{address}")
    limits: Limits = request.app.state.limits
    charge_every = c.settings.stream_charge_seconds

    async def stream(state: RequestState | None) -> AsyncIterator[bytes]:
        sent: RequestState | None = None
        started = last = charged = time.monotonic()
        try:
            while True:
                if state is not None and state != sent:
                    shown = disclosed(request, state.public_view())
                    yield b"event: state\ndata: " + orjson.dumps(shown) + b"\n\n"
                    sent, last = state, time.monotonic()
                    if state.status.terminal:
                        return
                now = time.monotonic()
                if now - started > STREAM_SECONDS:
                    return
                if now - charged >= charge_every:  # one read per interval open
                    charged = now
                    try:
                        await limits.check(key, READ, address)
                    except Refused as over:
                        yield b"event: error\ndata: " + orjson.dumps(over.message) + b"\n\n"
                        return
                if now - last > KEEP_ALIVE_SECONDS:
                    yield b": keep-alive\n\n"
                    last = now
                await asyncio.sleep(POLL_SECONDS)
                state = await store.get(request_id)
        finally:
            release()

    return StreamingResponse(
        stream(state),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        background=BackgroundTask(release),  # also when the body never started
    )


@router.get("/reviews", summary="Reports held for a maintainer's review, oldest first")
async def list_reviews(
    request: Request,
    limit: Annotated[int, Query(ge=1, le=100)] = 50,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> Response:
    queue: ReviewQueue = request.app.state.review_queue
    disclosure: Disclosure = request.app.state.disclosure
    page = await queue.page(limit, offset)
    everything = admin(request)
    page["reviews"] = [disclosure.review(item, everything) for item in page["reviews"]]
    return json_response(page)


@router.post(
    "/reviews/{request_id}",
    status_code=202,
    summary="Correct a held report's triage and release it to be filed",
)
async def release_review(
    request: Request,
    request_id: str,
    correction: Annotated[Correction, Body()],
) -> Response:
    queue: ReviewQueue = request.app.state.review_queue
    reviewer = getattr(request.state, "api_key_id", None)
    try:
        released = await queue.release(request_id, correction, reviewer)
    except NotFound:
        raise _not_found(request_id) from None
    except NotHeld as exc:
        raise ApiError(400, str(exc), details={"request_id": request_id}) from None
    except (ValueError, ValidationError) as exc:
        raise ApiError(422, str(exc), details={"request_id": request_id}) from None
    return json_response(
        {
            "request_id": released.request_id,
            "status": "released",
            "triage": released.triage.model_dump(mode="json"),
        },
        202,
    )
