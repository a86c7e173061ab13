"""Raw-ASGI gate in front of every route, the ingest fast path included: authenticates,
checks the scope, counts the rate limit, and adds the rate-limit headers to the answer.
Refusals answer in the error envelope, are logged (``auth_refused``, never the secret)
and counted (``ai_pipeline_auth_refusals_total{reason}``)."""

from __future__ import annotations

import asyncio

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ai_pipeline.api.auth import HEALTH_PATH, Authenticator, Refused, Rule, rule_for
from ai_pipeline.api.errors import unavailable
from ai_pipeline.api.ingest import failure, respond
from ai_pipeline.api.rate_limits import Limits, rate_headers
from ai_pipeline.bootstrap import Container
from ai_pipeline.domain.api_keys import ADMIN, grants
from ai_pipeline.domain.errors import UnavailableError
from ai_pipeline.observability.logging import get_logger
from ai_pipeline.ports import ApiKey

log = get_logger(__name__)
# Refusals that count against the address's limit of failed authentications.
WRONG_KEY = frozenset({"unknown", "revoked"})


class Guard:
    def __init__(self, app: ASGIApp, container: Container):
        self.app = app
        self.metrics = container.metrics
        self.metrics_public = container.settings.metrics_public
        settings = container.settings
        self.auth = Authenticator(container.keys, settings.auth_cache_seconds, settings.auth)
        self.limits = Limits(container.limiter, container.settings)
        # Bounded like a submission's wait on the store: a store that is down answers 503
        # promptly instead of after the Redis client's half-minute of retries.
        self.timeout = container.settings.submit_timeout_seconds

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        rule = rule_for(scope["method"], scope["path"], self.metrics_public)
        if rule is not None and rule.instead in (name for name, _ in scope["headers"]):
            rule = None  # the route checks that header itself (a reply token)
        if rule is None:
            if scope["path"] == HEALTH_PATH:  # open, but details only for admin
                scope.setdefault("state", {})["admin"] = await self._sees_everything(scope)
            await self.app(scope, receive, send)
            return
        client = scope.get("client")
        address = client[0] if client else None
        try:
            async with asyncio.timeout(self.timeout):
                self.limits.check_blocked(address)
                key = await self._authenticate(scope, rule, address)
                kind = rule.limit
                decision = await self.limits.check(key, kind, address) if kind else None
        except Refused as refusal:
            self._record(refusal, scope, address)
            await respond(send, *failure(scope, refusal))
            return
        except (UnavailableError, TimeoutError) as exc:  # key store or counters unreachable
            reason = UnavailableError(f"keys or rate limits: {type(exc).__name__}: {exc}")
            await respond(send, *failure(scope, unavailable(reason)))
            return
        state = scope.setdefault("state", {})
        # Everything is shown to admin keys, and to everyone while the service is open.
        state["admin"] = key is None or grants(key, ADMIN)
        if key is not None:  # who acted, for routes that record it (a review's release)
            state["api_key_id"] = key.key_id
            state["api_key"] = key
        if decision is None:
            await self.app(scope, receive, send)
            return
        extra = [(k.lower().encode(), v.encode()) for k, v in rate_headers(decision).items()]

        async def send_with_limits(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *extra]
            await send(message)

        await self.app(scope, receive, send_with_limits)

    async def _authenticate(self, scope: Scope, rule: Rule, address: str | None) -> ApiKey | None:
        try:
            return await self.auth.authenticate(scope["headers"], rule)
        except Refused as refusal:
            if refusal.reason in WRONG_KEY:
                await self.limits.failed(address)  # 429 instead, once over the limit
            raise

    async def _sees_everything(self, scope: Scope) -> bool:
        try:
            async with asyncio.timeout(self.timeout):
                return await self.auth.sees_everything(scope["headers"])
        except (UnavailableError, TimeoutError):
            return False  # the key store is down: the statuses alone

    def _record(self, refusal: Refused, scope: Scope, address: str | None) -> None:
        self.metrics.auth_refusals.labels(refusal.reason).inc()
        log.warning(
            "auth_refused",
            reason=refusal.reason,
            status=refusal.status,
            method=scope["method"],
            route=scope["path"],
            client=address,
            key_id=refusal.key_id,
        )
