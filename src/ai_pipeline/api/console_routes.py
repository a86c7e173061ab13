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
from starlette.responses import Response, StreamingResponse

from ai_pipeline.api.errors import ApiError
from ai_pipeline.api.routes import container, json_response
from ai_pipeline.domain.request_state import RequestState
from ai_pipeline.domain.review import Correction
from ai_pipeline.duplicate_hints import DuplicateHints
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
    store = container(request).store
    state = await store.get(request_id)
    if state is None:
        raise _not_found(request_id)

    async def stream(state: RequestState | None) -> AsyncIterator[bytes]:
        sent: RequestState | None = None
        started = last = time.monotonic()
        while True:
            if state is not None and state != sent:
                yield b"event: state\ndata: " + orjson.dumps(state.public_view()) + b"\n\n"
                sent, last = state, time.monotonic()
                if state.status.terminal:
                    return
            now = time.monotonic()
            if now - started > STREAM_SECONDS:
                return
            if now - last > KEEP_ALIVE_SECONDS:
                yield b": keep-alive\n\n"
                last = now
            await asyncio.sleep(POLL_SECONDS)
            state = await store.get(request_id)

    return StreamingResponse(
        stream(state),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


@router.get("/reviews", summary="Reports held for a maintainer's review, oldest first")
async def list_reviews(
    request: Request,
    limit: Annotated[int, Query(ge=1, le=100)] = 50,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> Response:
    queue: ReviewQueue = request.app.state.review_queue
    return json_response(await queue.page(limit, offset))


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
