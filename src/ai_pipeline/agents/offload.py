"""CPU-heavy work on one report, off the event loop and within a budget.

Rules, embedding, redaction and rendering read report text: milliseconds for an ordinary
report, more for 64 KiB fields built to be slow. On the event loop that time is stolen
from the API and every other agent of the process (``ai-pipeline serve`` runs them all on
one loop). ``off_loop`` runs such work on a worker thread; ``report_budget`` gives the
handling of one report a budget of worker time, and a report that spends it fails with
``OverBudget``, a ``PermanentError``: the runner dead-letters the message with that reason
at once, rather than retrying work that would overrun again.

The budget counts the CPU time of the worker thread, not time on the clock: a busy box
slows every report alike, and must not turn ordinary ones into dead letters. Work that sits
on the clock for ``WALL_FACTOR`` times the budget without spending it (a starved box, a
blocked call) counts as over budget too, so that nothing waits forever.

A thread cannot be stopped from outside: work that overruns keeps its worker until it
returns, while the agent has already moved on. That overrun is bounded: every pattern that
reads report text runs in linear time (``ai_pipeline.text.patterns``), every field is
bounded (``domain.models``), and so is each piece of work. Queueing for a worker is not
charged to the budget, only the time a piece of work runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import functools
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import ParamSpec, TypeVar

from ai_pipeline.domain.errors import PermanentError

P = ParamSpec("P")
T = TypeVar("T")

DEFAULT_BUDGET_SECONDS = 10.0
# Enough for the agents of one process to work side by side; an overrunning piece of work
# holds one until it returns.
WORKERS = 4
# How much longer than its CPU budget a report's work may take on the clock.
WALL_FACTOR = 10.0
# How often the loop reads the CPU clock of work that has not finished in the time it could
# have spent its budget (CPU time never runs ahead of the clock).
POLL_SECONDS = 0.05


class OverBudget(PermanentError):
    """The work on one report outlasted its budget (dead-lettered with this reason)."""


class ReportBudget:
    """Seconds of worker CPU time one report may use, across every ``off_loop`` call made
    while it is the current budget."""

    def __init__(self, seconds: float):
        self.seconds = seconds
        self.spent = 0.0

    @property
    def remaining(self) -> float:
        return self.seconds - self.spent


_current: contextvars.ContextVar[ReportBudget | None] = contextvars.ContextVar(
    "report_budget", default=None
)


@contextlib.contextmanager
def report_budget(seconds: float) -> Iterator[ReportBudget]:
    """The budget ``off_loop`` charges while this block runs (in this task and the tasks it
    starts)."""
    budget = ReportBudget(seconds)
    token = _current.set(budget)
    try:
        yield budget
    finally:
        _current.reset(token)


async def off_loop(fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T:
    """``fn(*args, **kwargs)`` on a worker thread, charged to the current report's budget:
    ``OverBudget`` once it has run longer than what remains (without a budget, no limit)."""
    budget = _current.get()
    if budget is not None and budget.remaining <= 0:
        raise _over(budget, fn)
    loop = asyncio.get_running_loop()
    started: asyncio.Future[None] = loop.create_future()
    clock = _Clock()

    def work() -> T:
        clock.start()
        loop.call_soon_threadsafe(_resolve, started)
        try:
            return fn(*args, **kwargs)
        finally:
            clock.stop()

    done = loop.run_in_executor(_executor(), work)
    if budget is None:
        return await done
    # Waiting for a free worker is not the report's doing: the budget runs from the start.
    done.add_done_callback(lambda _: _resolve(started))
    await started
    wall_deadline = time.monotonic() + budget.remaining * WALL_FACTOR
    try:
        while True:
            left = budget.remaining - clock.elapsed()
            wall_left = wall_deadline - time.monotonic()
            if left <= 0 or wall_left <= 0:
                budget.spent = budget.seconds  # over: nothing more runs for this report
                raise _over(budget, fn)
            with contextlib.suppress(TimeoutError):
                return await asyncio.wait_for(
                    asyncio.shield(done), min(max(left, POLL_SECONDS), wall_left)
                )
    finally:
        budget.spent += clock.elapsed()


def _over(budget: ReportBudget, fn: Callable[..., object]) -> OverBudget:
    name = getattr(fn, "__qualname__", None) or type(fn).__name__
    return OverBudget(
        f"the report's text took longer than its {budget.seconds:g} s of processing"
        f" (AI_PIPELINE_REPORT_CPU_BUDGET_SECONDS), in {name}"
    )


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


class _Clock:
    """The CPU time a piece of work has used on its worker thread, read from the event loop
    while it runs."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._thread_clock: int | None = None
        self._started = 0.0
        self._stopped: float | None = None

    def start(self) -> None:
        with self._lock:
            self._thread_clock = time.pthread_getcpuclockid(threading.get_ident())
            self._started = time.clock_gettime(self._thread_clock)

    def stop(self) -> None:
        with self._lock:
            if self._thread_clock is not None:
                self._stopped = time.clock_gettime(self._thread_clock)

    def elapsed(self) -> float:
        # Under the lock: once stopped, the worker's clock goes on counting its next work.
        with self._lock:
            if self._thread_clock is None:
                return 0.0
            if self._stopped is None:
                return time.clock_gettime(self._thread_clock) - self._started
            return self._stopped - self._started


@functools.cache
def _executor() -> ThreadPoolExecutor:
    # Created on first use, not at import; shared by the agents of the process.
    return ThreadPoolExecutor(max_workers=WORKERS, thread_name_prefix="report-text")
