"""Ingest before processing: how agents share one event loop with the HTTP API.

A report is safe once it is in the log, and the pipeline has minutes (the SLO) to process
it, while a submitter waits on every millisecond of the POST. So while HTTP requests are
in flight, agents together get at most ``share`` of the loop's time (a token bucket of
seconds, refilled at ``share`` per second, holding at most ``burst``); when the API is not
busy they run unthrottled and catch up. ``share`` is a floor too: under a flood of
submissions the pipeline still moves.

"Busy" means requests were in flight more than ``busy_above`` of the recent past (an
exponential average over ``window`` seconds), not at this instant: under load the loop often
finishes every request it has read before reading the next ones from the sockets, and those
gaps are not idleness; a steady trickle of requests, on the other hand, is not load.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable


class IngestPriority:
    def __init__(
        self,
        share: float = 0.05,
        burst: float = 0.005,
        pause: float = 0.002,
        busy_above: float = 0.5,
        window: float = 0.1,
        clock: Callable[[], float] = time.monotonic,
    ):
        if not 0.0 < share <= 1.0:
            raise ValueError("share must be in (0, 1]")
        self.share = share
        self.burst = burst
        self.pause = pause
        self.busy_above = busy_above
        self.window = window
        self._clock = clock
        self._budget = burst
        self._refilled_at = clock()
        self._utilisation = 0.0
        self._measured_at = clock()
        self.in_flight = 0
        self.throttled_seconds = 0.0

    def request_started(self) -> None:
        self._measure()
        self.in_flight += 1

    def request_finished(self) -> None:
        self._measure()
        self.in_flight -= 1

    def _measure(self) -> float:
        """Share of recent time with HTTP requests in flight (decaying over ``window``)."""
        now = self._clock()
        keep = math.exp(-(now - self._measured_at) / self.window)
        self._utilisation = self._utilisation * keep + (1 - keep) * (self.in_flight > 0)
        self._measured_at = now
        return self._utilisation

    @property
    def api_busy(self) -> bool:
        return self._measure() > self.busy_above

    def _refill(self) -> float:
        now = self._clock()
        if not self.api_busy:
            self._budget = self.burst
        else:
            self._budget = min(self.burst, self._budget + (now - self._refilled_at) * self.share)
        self._refilled_at = now
        return self._budget

    async def turn(self) -> None:
        """Wait until an agent may do a unit of work."""
        while self._refill() <= 0:
            started = self._clock()
            await asyncio.sleep(self.pause)
            self.throttled_seconds += self._clock() - started

    def spent(self, seconds: float) -> None:
        """Charge work an agent just did (only while the API is busy does it count)."""
        if self.api_busy:
            self._budget -= seconds


class CostEstimate:
    """What a unit of agent work costs, learned while nothing else competes for the loop.

    Wall time measured under load also holds the HTTP requests the loop served while the
    step awaited; charging that would starve agents exactly when the API is busiest. So
    the estimate moves only on measurements taken while the API was idle, and busy-time
    work is charged at the estimate.
    """

    def __init__(self, initial: float = 0.001):
        self.value = initial

    def charge(self, elapsed: float, api_was_busy: bool) -> float:
        if not api_was_busy:
            self.value = 0.8 * self.value + 0.2 * elapsed
        return self.value
