"""The consumer loop every agent shares: fetch, handle, publish outputs, commit.

Agents themselves are plain handlers (event in, messages out); this module owns delivery:
retries with backoff, dead letters with a reason, per-partition order, and liveness.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum

import structlog
from pydantic import ValidationError

from ai_pipeline.agents.messages import dead_letter
from ai_pipeline.agents.priority import CostEstimate, IngestPriority
from ai_pipeline.domain.errors import PermanentError, TransientError, UnavailableError
from ai_pipeline.domain.events import Event, Step, StepChanged, StepStatus, Topic, decode, encode
from ai_pipeline.domain.liveness import Heartbeat
from ai_pipeline.observability.logging import get_logger
from ai_pipeline.observability.metrics import Metrics
from ai_pipeline.ports import Bus, Consumer, Message, OutgoingMessage

log = get_logger(__name__)

Handler = Callable[[Event], Awaitable[Sequence[OutgoingMessage]]]


@dataclass(frozen=True)
class AgentSpec:
    name: str  # as in the health document: "triage_agent"
    group: str
    topic: Topic
    handle: Handler
    # The request step to mark failed when a message is dead-lettered (None: no request).
    step: Step | None


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 5
    base_delay: float = 0.2
    max_delay: float = 30.0
    max_retry_after: float = 300.0

    def delay(self, attempt: int, hint: float | None) -> float:
        if hint is not None:
            return min(max(hint, 0.0), self.max_retry_after)
        ceiling = min(self.max_delay, self.base_delay * 2 ** (attempt - 1))
        return random.uniform(ceiling / 2, ceiling)  # jitter spreads retries of many agents


class AgentStatus(StrEnum):
    STARTING = "starting"
    RUNNING = "running"
    DEGRADED = "degraded"
    STOPPED = "stopped"


@dataclass
class AgentHealth:
    status: AgentStatus = AgentStatus.STARTING
    last_poll: float = 0.0
    handled: int = 0
    dead_lettered: int = 0
    last_error: str | None = None
    started_at: float = field(default_factory=time.time)
    status_since: float = field(default_factory=time.time)
    # The dependency the agent waits on ("tracker", "bus", "state"…), set while it backs
    # off and cleared by the next poll that goes through: its requests are late, not stuck.
    waiting_on: str | None = None
    # A message handled, or a dependency waited on: either way the agent is not stuck.
    last_progress: float = field(default_factory=time.time)

    def beat(self, agent: str, instance: str) -> Heartbeat:
        """What the agent says of itself to every process sharing the store."""
        return Heartbeat(
            agent=agent,
            instance=instance,
            status=self.status.value,
            waiting_on=self.waiting_on,
            reason=self.last_error if self.waiting_on else None,
            since=self.status_since,
            last_progress=self.last_progress,
            at=time.time(),
        )


class AgentRunner:
    def __init__(
        self,
        spec: AgentSpec,
        bus: Bus,
        metrics: Metrics,
        retry: RetryPolicy,
        fetch_max: int = 64,
        poll_timeout: float = 1.0,
        priority: IngestPriority | None = None,
    ):
        self.spec = spec
        self._bus = bus
        self._metrics = metrics
        self._retry = retry
        self._fetch_max = fetch_max
        self._poll_timeout = poll_timeout
        self._priority = priority or IngestPriority(share=1.0)
        self._fetch_cost = CostEstimate()
        self._message_cost = CostEstimate()
        self.health = AgentHealth()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=f"agent:{self.spec.name}")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        self._set_status(AgentStatus.STOPPED)

    @property
    def alive(self) -> bool:
        return self._task is not None and not self._task.done()

    def _set_status(self, status: AgentStatus) -> None:
        if status is not self.health.status:
            self.health.status, self.health.status_since = status, time.time()
        if status is AgentStatus.RUNNING:
            self.health.waiting_on = None
        self._metrics.agent_up.labels(self.spec.name).set(0 if status is AgentStatus.STOPPED else 1)

    async def _run(self) -> None:
        consumer = self._bus.consumer(self.spec.group, [self.spec.topic.value])
        try:
            while True:
                try:
                    await self._poll_once(consumer)
                    self._set_status(AgentStatus.RUNNING)
                except asyncio.CancelledError:
                    raise
                except Exception as exc:  # a dependency failed: back off, redeliver
                    await asyncio.sleep(self._back_off(exc))
        finally:
            await consumer.close()
            self._set_status(AgentStatus.STOPPED)

    def _back_off(self, exc: Exception) -> float:
        """How long to wait before redelivering: the dependency's own hint when it gave one
        (a rate limit), capped so the consumer keeps polling; else a short jittered pause."""
        self.health.last_error = f"{type(exc).__name__}: {exc}"
        self._set_status(AgentStatus.DEGRADED)
        # Only dependencies fail the loop itself: the bus (fetch, commit) or, through the
        # handler, whatever an UnavailableError names. Waiting on one is progress.
        if isinstance(exc, UnavailableError):
            self.health.waiting_on = exc.dependency or "unknown"
        else:
            self.health.waiting_on = "bus"
        self.health.last_progress = time.time()
        hint = exc.retry_after if isinstance(exc, TransientError) else None
        if hint is not None:
            log.warning("agent_waiting", agent=self.spec.name, seconds=hint, reason=str(exc))
            return min(hint, self._retry.max_delay)
        log.error("agent_loop_error", agent=self.spec.name, error=str(exc))
        # Short and steady: a broker or Redis back after seconds is used at once (a growing
        # wait kept agents asleep well after a broker restart).
        return self._retry.delay(3, None)

    async def _poll_once(self, consumer: Consumer) -> None:
        await self._priority.turn()
        started, busy = time.perf_counter(), self._priority.api_busy
        batch = await consumer.fetch(self._fetch_max, self._poll_timeout)
        if batch:  # reading a batch is agent work too; an empty wait is not
            elapsed = time.perf_counter() - started
            self._priority.spent(self._fetch_cost.charge(elapsed, busy or self._priority.api_busy))
        self.health.last_poll = time.time()
        by_partition: dict[tuple[str, int], list[Message]] = defaultdict(list)
        for message in batch:
            by_partition[(message.topic, message.partition)].append(message)
        # Partitions in parallel, each one in order: one request's events never overtake.
        outcomes = await asyncio.gather(
            *(self._drain(consumer, messages) for messages in by_partition.values()),
            return_exceptions=True,
        )
        for outcome in outcomes:
            if isinstance(outcome, BaseException):
                raise outcome

    async def _drain(self, consumer: Consumer, messages: list[Message]) -> None:
        for message in messages:
            await self._priority.turn()
            started, busy = time.perf_counter(), self._priority.api_busy
            try:
                outputs = await self._process(message)
                await consumer.commit(message, outputs)
            except BaseException:
                # Nothing after an uncommitted message may be committed: redeliver from it.
                await consumer.rewind(message)
                raise
            self.health.last_progress = time.time()
            elapsed = time.perf_counter() - started
            busy = busy or self._priority.api_busy
            self._priority.spent(self._message_cost.charge(elapsed, busy))
            self._metrics.bus_consumed.labels(self.spec.group, message.topic).inc()

    async def _process(self, message: Message) -> Sequence[OutgoingMessage]:
        started = time.perf_counter()
        with structlog.contextvars.bound_contextvars(request_id=message.key):
            try:
                event = decode(message.value)
            except ValidationError as exc:
                return self._dead_letter(message, f"undecodable message: {_first_error(exc)}", 0)
            outputs = await self._handle_with_retries(message, event)
        self._metrics.agent_handling_time.labels(self.spec.name).observe(
            time.perf_counter() - started
        )
        return outputs

    async def _handle_with_retries(
        self, message: Message, event: Event
    ) -> Sequence[OutgoingMessage]:
        attempt = 0
        while True:
            attempt += 1
            try:
                outputs = await self.spec.handle(event)
            except PermanentError as exc:
                self._metrics.agent_failed.labels(self.spec.name).inc()
                return self._dead_letter(message, str(exc), attempt)
            except UnavailableError:
                raise  # the loop backs off and redelivers; no attempt is used up
            except Exception as exc:
                self._metrics.agent_failed.labels(self.spec.name).inc()
                reason = f"{type(exc).__name__}: {exc}"
                self.health.last_error = reason
                if attempt >= self._retry.max_attempts:
                    return self._dead_letter(
                        message, f"gave up after {attempt} attempts: {reason}", attempt
                    )
                hint = exc.retry_after if isinstance(exc, TransientError) else None
                delay = self._retry.delay(attempt, hint)
                log.warning(
                    "handler_retry",
                    agent=self.spec.name,
                    attempt=attempt,
                    delay=delay,
                    error=reason,
                )
                await asyncio.sleep(delay)
                continue
            self.health.handled += 1
            self._metrics.agent_handled.labels(self.spec.name).inc()
            return outputs

    def _dead_letter(self, message: Message, reason: str, attempts: int) -> list[OutgoingMessage]:
        self.health.dead_lettered += 1
        dead_topic = f"{message.topic}.dlq"
        self._metrics.agent_dead_letters.labels(self.spec.name, dead_topic).inc()
        log.error("dead_lettered", agent=self.spec.name, topic=dead_topic, reason=reason)
        outputs = [
            dead_letter(
                message.topic,
                message.key,
                message.value,
                reason=reason,
                agent=self.spec.name,
                attempts=attempts,
                headers=message.headers,
                partition=message.partition,
                offset=message.offset,
            )
        ]
        if self.spec.step is not None:
            failed = StepChanged(
                request_id=message.key,
                step=self.spec.step,
                status=StepStatus.FAILED,
                error=f"{self.spec.step.value} failed: {reason}"[:2000],
            )
            outputs.append(OutgoingMessage(Topic.STATUS_UPDATES.value, message.key, encode(failed)))
        return outputs


def _first_error(exc: ValidationError) -> str:
    errors = exc.errors()
    if not errors:
        return str(exc)
    first = errors[0]
    where = ".".join(str(p) for p in first.get("loc", ()))
    return f"{where}: {first.get('msg', '')}" if where else str(first.get("msg", ""))
