"""Hourly limits per API key, and per client address for requests made without one."""

from __future__ import annotations

import math
import time

from ai_pipeline.api.auth import Refused
from ai_pipeline.api.errors import ApiError
from ai_pipeline.domain.api_keys import SUBMIT
from ai_pipeline.ports import ApiKey, RateDecision, RateLimiter
from ai_pipeline.settings import Settings

HOUR = 3600.0


class Limits:
    def __init__(self, limiter: RateLimiter, settings: Settings):
        self._limiter = limiter
        self._defaults = {
            SUBMIT: settings.rate_limit_submit_per_hour,
            "read": settings.rate_limit_read_per_hour,
        }
        self._per_address = settings.rate_limit_per_address_per_hour

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


def rate_headers(decision: RateDecision) -> dict[str, str]:
    return {
        "X-RateLimit-Limit": str(decision.limit),
        "X-RateLimit-Remaining": str(decision.remaining),
        "X-RateLimit-Reset": str(math.ceil(decision.reset_at)),
        "X-RateLimit-Window": str(round(decision.window_seconds)),
    }


def retry_after(decision: RateDecision) -> int:
    return max(1, math.ceil(decision.reset_at - time.time()))
