"""Live event streams are bounded per caller: at most ``max_streams_per_key`` open at once
per key (per client address without one), in each API process, and each open stream counts
one read against its key's hourly limit every ``stream_charge_seconds`` (a stream polls the
store twice a second for as long as it is open: it must not be a free, unbounded read)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable

from ai_pipeline.api.errors import ApiError


class StreamSlots:
    def __init__(self, cap: int):
        self._cap = cap
        self._open: Counter[str] = Counter()

    def take(self, holder: str) -> Callable[[], None]:
        """A slot for ``holder``, or 429; returns its release (idempotent: call it from
        every path a stream can end by)."""
        if self._open[holder] >= self._cap:
            raise ApiError(
                429,
                f"{self._cap} live event streams are open for this key already; close one"
                " (AI_PIPELINE_MAX_STREAMS_PER_KEY)",
                headers={"Retry-After": "5"},
            )
        self._open[holder] += 1
        released = False

        def release() -> None:
            nonlocal released
            if not released:
                released = True
                self._open[holder] -= 1
                if self._open[holder] <= 0:
                    del self._open[holder]

        return release

    def open(self, holder: str) -> int:
        return self._open[holder]
