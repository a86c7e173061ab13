"""The FastAPI application: routes, error envelope, metrics, and the pipeline's lifespan."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Collection
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.responses import Response
from starlette.types import ASGIApp

from ai_pipeline import __version__
from ai_pipeline.api import console_routes, errors, loop_routes
from ai_pipeline.api.console import mount_console
from ai_pipeline.api.disclosure import Disclosure
from ai_pipeline.api.guard import Guard
from ai_pipeline.api.ingest import IngestFastPath
from ai_pipeline.api.middleware import ObserveRequests
from ai_pipeline.api.routes import json_response, router
from ai_pipeline.api.streams import StreamSlots
from ai_pipeline.bootstrap import AGENTS, Container
from ai_pipeline.domain.redaction import Redactor
from ai_pipeline.duplicate_hints import DuplicateHints
from ai_pipeline.observability.health import health_document
from ai_pipeline.observability.probes import Recent
from ai_pipeline.review_queue import ReviewQueue
from ai_pipeline.service import Pipeline

# How long health, aggregate metrics and the consumer lag are reused: probes and scrapers
# asking many times a second must not multiply the store's and Kafka's load.
RECENT_SECONDS = 1.0


def create_app(container: Container, agents: Collection[str] = tuple(AGENTS)) -> ASGIApp:
    """The service's ASGI application: FastAPI for every route, wrapped in three raw-ASGI
    layers (metrics, the guard of keys and limits, and the ingest fast path) that the hot
    path never leaves.

    ``agents``: the agents this process runs beside the API (all of them by default)."""
    # The guard says at start whether the API is open: once the key store has started.
    app = _fastapi_app(container, Pipeline(container, agents), lambda: guard.auth.start())
    errors.install(app)
    app.include_router(router)
    app.include_router(console_routes.router)
    app.include_router(loop_routes.router)
    app.state.duplicate_hints = DuplicateHints(
        container.store,
        Redactor.from_setting(container.settings.redact),
        capacity=container.settings.duplicate_index_size,
    )
    app.state.review_queue = ReviewQueue(container)
    _mount_github_webhooks(app, container)
    # Answers to callers without admin are redacted whatever AI_PIPELINE_REDACT says (that
    # setting is about what gets filed).
    app.state.disclosure = Disclosure(Redactor())
    mount_console(app)
    guard = Guard(IngestFastPath(app, container), container)
    app.state.limits = guard.limits  # live event streams count reads as they last
    app.state.stream_slots = StreamSlots(container.settings.max_streams_per_key)
    return ObserveRequests(guard, container.metrics, container.ingest_priority)


def _mount_github_webhooks(app: FastAPI, container: Container) -> None:
    """The webhook route exists only while its secret is set (GitHub App mode)."""
    secret = container.settings.github_webhook_secret
    if secret is None or container.github_store is None:
        return
    from ai_pipeline.api import webhook_routes
    from ai_pipeline.github_webhooks import GitHubWebhooks

    store = container.github_store
    app.state.github_webhooks = GitHubWebhooks(container, store, secret.get_secret_value().encode())
    app.include_router(webhook_routes.router)


def create_agent_app(container: Container, agents: Collection[str]) -> FastAPI:
    """An agent process's small server: its own health and Prometheus metrics, no API."""
    pipeline = Pipeline(container, agents)
    app = _fastapi_app(container, pipeline)
    errors.install(app)

    @app.get("/health", summary="Health of the agents in this process")
    @app.get("/api/v1/health", include_in_schema=False)
    async def health() -> Response:
        # Its own port, inside the cluster: the details stay (no API, no key to ask for).
        doc, code = await app.state.recent.get(
            "health", lambda: health_document(container, pipeline, whole_service=False)
        )
        return json_response(doc, code)

    return app


def _fastapi_app(
    container: Container,
    pipeline: Pipeline,
    started: Callable[[], Awaitable[None]] | None = None,
) -> FastAPI:
    """``started``: called once the pipeline (and so its stores) has started."""

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        await pipeline.start()
        if started is not None:
            await started()
        try:
            yield
        finally:
            await pipeline.stop()

    app = FastAPI(
        title="AI Pipeline",
        version=__version__,
        description="Bug reports in; triaged, well-written tracker issues out.",
        lifespan=lifespan,
    )
    app.state.container = container
    app.state.pipeline = pipeline
    app.state.recent = Recent(RECENT_SECONDS)

    @app.get("/metrics", include_in_schema=False)
    async def prometheus(request: Request) -> Response:
        # Fresh at every scrape (not up to one interval old), yet one Kafka query a second
        # however many scrapers ask.
        await app.state.recent.get("lag", pipeline.export_lag)
        registry = request.app.state.container.metrics.registry
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    return app
