"""When the next GitHub request may go: rate limits and content-creation pacing.

GitHub enforces three limits a tracker meets (docs: "Rate limits for the REST API"):

- the primary limit, an hourly request budget shown in ``X-RateLimit-Remaining`` and
  ``X-RateLimit-Reset`` on every answer: at zero, every request fails until the reset;
- secondary limits, answered 403 or 429 with ``Retry-After`` (or, without it, a minute);
- content creation: about 80 requests a minute and 500 an hour that create something
  (issues, comments, labels), best sent one at a time.

The gate turns all three into one answer, "wait this long", so a caller waits instead of
being refused, and a refusal that happens anyway only moves the gate. It is per process:
several tracker processes share GitHub's limits, so each should be given its share.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass

PRIMARY = "primary"
SECONDARY = "secondary"
PACING = "pacing"


@dataclass(frozen=True)
class Wait:
    seconds: float
    reason: str  # PRIMARY, SECONDARY or PACING


class RateGate:
    def __init__(
        self,
        creations_per_minute: int = 80,
        creations_per_hour: int = 500,
        clock: Callable[[], float] = time.time,
    ):
        if creations_per_minute < 1 or creations_per_hour < 1:
            raise ValueError("creation limits must be at least 1")
        self._windows = ((60.0, creations_per_minute), (3600.0, creations_per_hour))
        self._clock = clock
        self._created: deque[float] = deque()
        self._blocked_until = 0.0
        self._blocked_reason = SECONDARY

    def wait(self, creating: bool) -> Wait | None:
        """How long the next request must wait, or None when it may go now."""
        now = self._clock()
        waits = []
        if self._blocked_until > now:
            waits.append(Wait(self._blocked_until - now, self._blocked_reason))
        if creating:
            self._forget_older_than(now - self._windows[-1][0])
            for window, limit in self._windows:
                recent = [t for t in self._created if t > now - window]
                if len(recent) >= limit:
                    # The oldest creation in the window must age out before another fits.
                    waits.append(Wait(recent[-limit] + window - now, PACING))
        return max(waits, key=lambda w: w.seconds, default=None)

    def created(self) -> None:
        """Count a content-creating request that was sent (refused ones count too:
        GitHub counts attempts against the pacing limits)."""
        self._created.append(self._clock())

    def observe(self, headers: Mapping[str, str]) -> None:
        """Read the primary limit off any answer: at zero remaining, close until reset."""
        if headers.get("x-ratelimit-remaining") != "0":
            return
        reset = _number(headers.get("x-ratelimit-reset"))
        if reset is not None:
            self.block(reset - self._clock(), PRIMARY)

    def block(self, seconds: float, reason: str) -> None:
        until = self._clock() + max(0.0, seconds)
        if until > self._blocked_until:
            self._blocked_until, self._blocked_reason = until, reason

    def _forget_older_than(self, cutoff: float) -> None:
        while self._created and self._created[0] <= cutoff:
            self._created.popleft()


def _number(value: str | None) -> float | None:
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None
