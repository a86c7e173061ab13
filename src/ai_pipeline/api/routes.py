"""HTTP routes of ``/api/v1``: thin: parse, hand to the submission service, render."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Query, Request
from starlette.responses import Response

from ai_pipeline.adapters.trackers.local import LocalTracker
from ai_pipeline.api.disclosure import Disclosure, admin, private_issue, statuses_only
from ai_pipeline.api.errors import ApiError
from ai_pipeline.api.ingest import accept, api_key_id, check_headers
from ai_pipeline.bootstrap import Container
from ai_pipeline.domain.models import BugReport
from ai_pipeline.domain.paging import pagination
from ai_pipeline.domain.request_state import ACTIVE, RequestStatus
from ai_pipeline.observability.health import health_document, metrics_document
from ai_pipeline.observability.probes import Recent

router = APIRouter(prefix="/api/v1")

_REPORT_SCHEMA = BugReport.model_json_schema(ref_template="#/components/schemas/{model}")


class StatusFilter(StrEnum):
    ACTIVE = "active"
    COMPLETED = "completed"
    FAILED = "failed"
    ALL = "all"


class Period(StrEnum):
    HOUR = "1h"
    DAY = "24h"
    WEEK = "7d"
    MONTH = "30d"


_FILTERS = {
    StatusFilter.ACTIVE: list(ACTIVE),
    StatusFilter.COMPLETED: [RequestStatus.COMPLETED],
    StatusFilter.FAILED: [RequestStatus.FAILED],
    StatusFilter.ALL: list(RequestStatus),
}


def json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(
        orjson.dumps(body), status_code=status, media_type="application/json", headers=headers
    )


def container(request: Request) -> Container:
    c: Container = request.app.state.container
    return c


def disclosed(request: Request, status: dict[str, Any]) -> dict[str, Any]:
    """A status document as this caller may see it (``api.disclosure``)."""
    disclosure: Disclosure = request.app.state.disclosure
    return disclosure.status(status, admin(request))


@router.post(
    "/bug-reports",
    status_code=201,
    summary="Submit a bug report",
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": _REPORT_SCHEMA}},
        }
    },
    responses={
        200: {"description": "Already submitted: the existing request"},
        409: {"description": "This id or Idempotency-Key was used for another report"},
    },
)
async def submit_bug_report(request: Request) -> Response:
    """Served by ``api.ingest.IngestFastPath``; this route documents it and shares its code."""
    c = container(request)
    limit = c.settings.max_body_bytes
    check_headers(request.headers.get("content-type"), request.headers.get("content-length"), limit)
    body = await request.body()
    if len(body) > limit:
        raise ApiError(413, f"body larger than {limit} bytes")
    key = request.headers.get("idempotency-key")
    status, payload, headers = await accept(c, body, key, api_key_id(request.scope))
    return Response(payload, status_code=status, media_type="application/json", headers=headers)


@router.get("/requests/{request_id}/status", summary="A request's status")
async def request_status(request: Request, request_id: str) -> Response:
    state = await container(request).store.get(request_id)
    if state is None:
        raise ApiError(
            404, f"no request with id {request_id!r}", details={"request_id": request_id}
        )
    return json_response(disclosed(request, state.public_view()))


@router.get("/requests/{request_id}", summary="A request (same as its status)")
async def request_self(request: Request, request_id: str) -> Response:
    return await request_status(request, request_id)


@router.get("/requests", summary="List requests")
async def list_requests(
    request: Request,
    status: StatusFilter = StatusFilter.ACTIVE,
    limit: Annotated[int, Query(ge=1, le=100)] = 50,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> Response:
    page = await container(request).store.list_requests(_FILTERS[status], limit, offset)
    return json_response(
        {
            "requests": [disclosed(request, s.public_view()) for s in page.requests],
            "pagination": pagination(page.total, limit, offset, len(page.requests)),
        }
    )


@router.get("/health", summary="Health of every component")
async def health(request: Request) -> Response:
    """Every component's status; their details (errors, hosts, repositories) for admin."""
    pipeline = request.app.state.pipeline
    recent: Recent[Any] = request.app.state.recent
    doc, code = await recent.get("health", lambda: health_document(container(request), pipeline))
    return json_response(doc if admin(request) else statuses_only(doc), code)


@router.get("/metrics", summary="Aggregate processing metrics over a period")
async def metrics(request: Request, period: Period = Period.DAY) -> Response:
    recent: Recent[Any] = request.app.state.recent
    c = container(request)
    doc = await recent.get(("metrics", period), lambda: metrics_document(c, period.value))
    return json_response(doc)


@router.get("/issues", summary="Issues filed on the built-in local tracker")
async def list_issues(
    request: Request,
    limit: Annotated[int, Query(ge=1, le=100)] = 50,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> Response:
    tracker = await _local_tracker(request)
    issues, total = tracker.list_issues(limit, offset, private=admin(request))
    return json_response(
        {
            "issues": [i.as_dict() for i in issues],
            "pagination": pagination(total, limit, offset, len(issues)),
        }
    )


@router.get("/issues/{number}", summary="One issue of the local tracker")
async def get_issue(request: Request, number: int) -> Response:
    issue = (await _local_tracker(request)).get_issue(number)
    if issue is None or (private_issue(issue.labels) and not admin(request)):
        raise ApiError(404, f"no local issue #{number}", details={"number": number})
    return json_response(issue.as_dict())


async def _local_tracker(request: Request) -> LocalTracker:
    tracker = container(request).local_tracker
    if tracker is None:
        raise ApiError(
            404,
            "the local tracker is not in use: issues are filed on GitHub",
            code="INVALID_REQUEST",
        )
    await tracker.open()
    return tracker
