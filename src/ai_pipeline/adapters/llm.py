"""An OpenAI-compatible chat endpoint behind one small port (``ChatModel``).

Every call is bounded: a hard deadline per attempt, a few retries with full jitter on
transient failures (timeouts, connection errors, 429, 5xx), and a daily token budget
counted from the endpoint's ``usage``. Whatever goes wrong surfaces as one
:class:`LlmError` with a short ``reason``, so callers (the LLM triage engine, the LLM
drafter) fall back to their local path and count why.

The budget lives in process memory: each process (an ``ai-pipeline agent`` or the
embedded ``serve``) has its own, and a restart starts the day's count from zero.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any, Protocol, cast

import openai
from openai.types.chat import ChatCompletionMessageParam
from openai.types.shared_params import ResponseFormatJSONSchema
from pydantic import BaseModel, ConfigDict, ValidationError

from ai_pipeline.observability.metrics import Metrics

# Why a call produced nothing usable; also the ``reason`` label of the LLM metrics.
TIMEOUT = "timeout"
UNAVAILABLE = "unavailable"  # connection refused/reset, 5xx
RATE_LIMITED = "rate_limited"  # 429 after the retries
REJECTED = "rejected"  # another 4xx: our request or credentials are wrong, retrying won't help
INVALID_OUTPUT = "invalid_output"  # an answer that is not the JSON the schema asks for
BUDGET_EXHAUSTED = "budget_exhausted"
# Not a failure: a security-sensitive report is kept from an external model
# (AI_PIPELINE_LLM_SECURITY_REPORTS=deny, the default), so no call is made.
SECURITY_WITHHELD = "security_withheld"
REASONS = (TIMEOUT, UNAVAILABLE, RATE_LIMITED, REJECTED, INVALID_OUTPUT, BUDGET_EXHAUSTED)
_RETRIED = frozenset({TIMEOUT, UNAVAILABLE, RATE_LIMITED})

Message = dict[str, str]


class LlmError(Exception):
    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason


@dataclass(frozen=True)
class Completion:
    content: str
    prompt_tokens: int
    completion_tokens: int
    seconds: float


class ChatModel(Protocol):
    """The port: one schema-constrained chat completion, or :class:`LlmError`."""

    model: str

    async def complete(
        self,
        messages: list[Message],
        schema_name: str,
        schema: dict[str, Any],
        *,
        max_tokens: int | None = None,
    ) -> Completion: ...

    async def close(self) -> None: ...

    def status(self) -> dict[str, Any]: ...


def utc_today() -> date:
    return datetime.now(UTC).date()


class TokenBudget:
    """Prompt + completion tokens spent per UTC day, in memory (see the module docstring).

    Checked before each call, so the last call of a day may overshoot the limit by its own
    size (at most the prompt plus ``max_tokens``). A limit of 0 allows no call at all.
    """

    def __init__(self, daily_limit: int, today: Callable[[], date] = utc_today) -> None:
        self.daily_limit = daily_limit
        self._today = today
        self._day = today()
        self._spent = 0

    def _roll(self) -> None:
        day = self._today()
        if day != self._day:
            self._day, self._spent = day, 0

    @property
    def spent(self) -> int:
        self._roll()
        return self._spent

    def remaining(self) -> int:
        return max(0, self.daily_limit - self.spent)

    def exhausted(self) -> bool:
        return self.remaining() <= 0

    def spend(self, tokens: int) -> None:
        self._roll()
        self._spent += max(0, tokens)


@dataclass(frozen=True)
class LlmOptions:
    model: str
    timeout_seconds: float = 20.0  # hard deadline of one attempt, connect to last byte
    max_retries: int = 2  # attempts after the first, on transient failures only
    retry_base_seconds: float = 0.5
    retry_max_seconds: float = 4.0
    max_tokens: int = 300  # completion tokens per call
    temperature: float = 0.0


class _Usage(BaseModel):
    model_config = ConfigDict(extra="ignore")
    prompt_tokens: int = 0
    completion_tokens: int = 0


class _Message(BaseModel):
    model_config = ConfigDict(extra="ignore")
    content: str


class _Choice(BaseModel):
    model_config = ConfigDict(extra="ignore")
    message: _Message
    finish_reason: str | None = None


class _ChatResponse(BaseModel):
    """The part of an OpenAI chat completion we rely on, validated rather than trusted."""

    model_config = ConfigDict(extra="ignore")
    choices: list[_Choice]
    usage: _Usage | None = None


class OpenAIChat:
    """``ChatModel`` over the ``openai`` SDK (``AsyncOpenAI``), any compatible endpoint.

    The SDK's own retries are off: this class retries, so each attempt is counted and the
    budget is checked before each one.
    """

    def __init__(
        self,
        base_url: str,
        api_key: str | None,
        options: LlmOptions,
        metrics: Metrics,
        budget: TokenBudget,
        *,
        rng: random.Random | None = None,
        sleep: Callable[[float], Any] = asyncio.sleep,
    ) -> None:
        self.model = options.model
        self.options = options
        self.metrics = metrics
        self.budget = budget
        self._rng = rng or random.Random()
        self._sleep = sleep
        self._last_error: str | None = None
        self._client = openai.AsyncOpenAI(
            base_url=base_url,
            # Local servers take no key; the SDK insists on one.
            api_key=api_key or "unused",
            timeout=options.timeout_seconds,
            max_retries=0,
        )

    async def close(self) -> None:
        await self._client.close()

    def status(self) -> dict[str, Any]:
        """For the health document: the LLM is optional (triage falls back to local), so a
        failing endpoint shows as degraded here without degrading the service."""
        failing = self._last_error is not None or self.budget.exhausted()
        return {
            "status": "degraded" if failing else "healthy",
            "model": self.model,
            "last_error": self._last_error,
            "budget_remaining_tokens": self.budget.remaining(),
        }

    async def complete(
        self,
        messages: list[Message],
        schema_name: str,
        schema: dict[str, Any],
        *,
        max_tokens: int | None = None,
    ) -> Completion:
        """``max_tokens`` overrides the configured cap for one call: a caller whose schema
        allows long strings asks for what that schema can need, so a valid answer is never
        cut (a cut answer is invalid JSON, and a retry would be cut the same way)."""
        attempt = 0
        while True:
            if self.budget.exhausted():
                raise LlmError(BUDGET_EXHAUSTED, f"{self.budget.daily_limit} tokens a day")
            try:
                completion = await self._attempt(
                    messages, schema_name, schema, max_tokens or self.options.max_tokens
                )
            except LlmError as error:
                self._count_error(error.reason)
                if error.reason not in _RETRIED or attempt >= self.options.max_retries:
                    self._last_error = error.reason
                    raise
            else:
                self._last_error = None
                return completion
            await self._sleep(self._backoff(attempt))
            attempt += 1

    def _backoff(self, attempt: int) -> float:
        """Full jitter: uniform in [0, min(cap, base * 2**attempt)]."""
        ceiling = min(self.options.retry_max_seconds, self.options.retry_base_seconds * 2**attempt)
        return self._rng.uniform(0.0, ceiling)

    async def _attempt(
        self, messages: list[Message], schema_name: str, schema: dict[str, Any], max_tokens: int
    ) -> Completion:
        started = time.perf_counter()
        try:
            async with asyncio.timeout(self.options.timeout_seconds):
                raw = await self._client.chat.completions.with_raw_response.create(
                    model=self.model,
                    messages=cast("list[ChatCompletionMessageParam]", messages),
                    max_tokens=max_tokens,
                    temperature=self.options.temperature,
                    response_format=_json_schema_format(schema_name, schema),
                )
                body = raw.content
        except (TimeoutError, openai.APITimeoutError) as error:
            raise LlmError(TIMEOUT, f"no answer within {self.options.timeout_seconds}s") from error
        except openai.RateLimitError as error:
            raise LlmError(RATE_LIMITED, str(error.status_code)) from error
        except openai.APIStatusError as error:
            reason = UNAVAILABLE if error.status_code >= 500 else REJECTED
            raise LlmError(reason, f"HTTP {error.status_code}") from error
        except openai.APIConnectionError as error:
            raise LlmError(UNAVAILABLE, type(error).__name__) from error
        seconds = time.perf_counter() - started
        self.metrics.llm_latency.labels(self.model).observe(seconds)
        return self._completion(body, seconds)

    def _completion(self, body: bytes, seconds: float) -> Completion:
        try:
            response = _ChatResponse.model_validate_json(body)
        except ValidationError as error:
            # Garbage from the endpoint: no usage we can trust, so estimate what it cost.
            self._spend(len(body) // 4, 0)
            raise LlmError(INVALID_OUTPUT, "not a chat completion") from error
        usage = response.usage or _Usage()
        self._spend(usage.prompt_tokens, usage.completion_tokens)
        if not response.choices:
            raise LlmError(INVALID_OUTPUT, "no choices")
        choice = response.choices[0]
        if choice.finish_reason == "length":
            raise LlmError(INVALID_OUTPUT, "answer cut at max_tokens")
        self.metrics.llm_calls.labels(self.model, "ok").inc()
        return Completion(
            choice.message.content, usage.prompt_tokens, usage.completion_tokens, seconds
        )

    def _spend(self, prompt: int, completion: int) -> None:
        self.budget.spend(prompt + completion)
        self.metrics.llm_tokens.labels(self.model, "prompt").inc(prompt)
        self.metrics.llm_tokens.labels(self.model, "completion").inc(completion)

    def _count_error(self, reason: str) -> None:
        if reason != BUDGET_EXHAUSTED:  # no call was made
            self.metrics.llm_calls.labels(self.model, "error").inc()
        self.metrics.llm_errors.labels(self.model, reason).inc()


def _json_schema_format(name: str, schema: dict[str, Any]) -> ResponseFormatJSONSchema:
    return {"type": "json_schema", "json_schema": {"name": name, "schema": schema, "strict": True}}
