"""Hourly limits per API key, per client address for requests made without one, and per
client address for requests made with a wrong key (a key-guessing client)."""

from __future__ import annotations

import math
import time

from ai_pipeline.api.auth import Refused
from ai_pipeline.api.errors import ApiError
from ai_pipeline.domain.api_keys import SUBMIT
from ai_pipeline.ports import ApiKey, RateDecision, RateLimiter
from ai_pipeline.settings import Settings

HOUR = 3600.0
BLOCKED_ENTRIES = 10_000


class Limits:
    def __init__(self, limiter: RateLimiter, settings: Settings):
        self._limiter = limiter
        self._defaults = {
            SUBMIT: settings.rate_limit_submit_per_hour,
            "read": settings.rate_limit_read_per_hour,
        }
        self._per_address = settings.rate_limit_per_address_per_hour
        self._failures_per_address = settings.rate_limit_auth_failures_per_address_per_hour
        # Addresses over their failure limit, until when (Unix time): refused before any key
        # lookup. Bounded like the key cache: a spray of addresses starts it afresh.
        self._blocked: dict[str, float] = {}

    def limit_for(self, key: ApiKey, kind: str) -> int:
        """The key's own limit where it has one, else the service's; 0 means none."""
        own = key.submit_per_hour if kind == SUBMIT else key.read_per_hour
        return self._defaults[kind] if own is None else own

    async def check(
        self, key: ApiKey | None, kind: str, address: str | None
    ) -> RateDecision | None:
        """Count the request; its decision, None when nothing limits it; ``Refused`` over."""
        if key is not None:
            bucket, limit = f"key:{key.key_id}:{kind}", self.limit_for(key, kind)
        else:
            # Counted over every route together: the setting caps an anonymous client.
            bucket, limit = f"address:{address or 'unknown'}", self._per_address
        if limit <= 0:
            return None
        decision = await self._limiter.hit(bucket, limit, HOUR)
        if not decision.allowed:
            key_id = key.key_id if key is not None else None
            headers = {**rate_headers(decision), "Retry-After": str(retry_after(decision))}
            message = f"rate limit of {limit} requests per hour exceeded; retry later"
            raise Refused(ApiError(429, message, headers=headers), "rate_limited", key_id)
        return decision

    def check_blocked(self, address: str | None) -> None:
        """``Refused`` (429) while ``address`` is over its limit of failed authentications."""
        until = self._blocked.get(address or "unknown")
        if until is None:
            return
        if time.time() >= until:
            del self._blocked[address or "unknown"]
            return
        raise _too_many_failures(until)

    async def failed(self, address: str | None) -> None:
        """Count a request made with a wrong key; ``Refused`` (429) once over the limit."""
        if self._failures_per_address <= 0:
            return
        where = address or "unknown"
        decision = await self._limiter.hit(
            f"auth-failures:{where}", self._failures_per_address, HOUR
        )
        if not decision.allowed:
            if len(self._blocked) >= BLOCKED_ENTRIES:
                self._blocked.clear()
            self._blocked[where] = decision.reset_at
            raise _too_many_failures(decision.reset_at)


def _too_many_failures(until: float) -> Refused:
    message = "too many requests with a wrong API key from this address; retry later"
    headers = {"Retry-After": str(max(1, math.ceil(until - time.time())))}
    return Refused(ApiError(429, message, headers=headers), "auth_failures")


def rate_headers(decision: RateDecision) -> dict[str, str]:
    return {
        "X-RateLimit-Limit": str(decision.limit),
        "X-RateLimit-Remaining": str(decision.remaining),
        "X-RateLimit-Reset": str(math.ceil(decision.reset_at)),
        "X-RateLimit-Window": str(round(decision.window_seconds)),
    }


def retry_after(decision: RateDecision) -> int:
    return max(1, math.ceil(decision.reset_at - time.time()))
