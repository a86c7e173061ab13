"""The LLM client's pure parts (budget, backoff) and its wiring (settings, bootstrap)."""

from __future__ import annotations

import random
from datetime import date, timedelta
from pathlib import Path

import pytest

from ai_pipeline.adapters.llm import LlmOptions, OpenAIChat, TokenBudget
from ai_pipeline.agents.ticket_creation import TicketCreationAgent
from ai_pipeline.bootstrap import Container, bootstrap
from ai_pipeline.drafting.drafter import TemplateDrafter
from ai_pipeline.drafting.llm_draft import LlmDrafter
from ai_pipeline.observability.metrics import Metrics
from ai_pipeline.settings import Settings
from ai_pipeline.triage.llm import LlmTriageEngine
from ai_pipeline.triage.local import LocalTriageEngine
from tests.conftest import make_settings

pytestmark = pytest.mark.anyio


class Clock:
    def __init__(self) -> None:
        self.day = date(2026, 11, 26)

    def __call__(self) -> date:
        return self.day


def test_the_budget_is_spent_per_utc_day_and_resets_the_next() -> None:
    clock = Clock()
    budget = TokenBudget(1000, today=clock)
    budget.spend(600)
    assert budget.remaining() == 400 and not budget.exhausted()
    budget.spend(500)
    assert budget.exhausted() and budget.remaining() == 0
    clock.day += timedelta(days=1)
    assert not budget.exhausted() and budget.remaining() == 1000 and budget.spent == 0


def test_a_zero_budget_allows_no_call() -> None:
    assert TokenBudget(0).exhausted()


async def test_retry_delays_are_jittered_and_bounded() -> None:
    options = LlmOptions(model="m", retry_base_seconds=0.5, retry_max_seconds=2.0)
    chat = OpenAIChat(
        "http://127.0.0.1:9/v1", None, options, Metrics(), TokenBudget(1), rng=random.Random(7)
    )
    try:
        for attempt, ceiling in [(0, 0.5), (1, 1.0), (2, 2.0), (6, 2.0)]:
            delays = {chat._backoff(attempt) for _ in range(50)}
            assert all(0 <= d <= ceiling for d in delays) and len(delays) > 40
    finally:
        await chat.close()


def test_lists_are_read_as_json_or_comma_separated(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AI_PIPELINE_LLM_ALLOWED_LABELS", '["bug", "priority: high"]')
    monkeypatch.setenv("AI_PIPELINE_LLM_ALLOWED_ASSIGNEES", "alice, @bob")
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    assert settings.llm_allowed_labels == ["bug", "priority: high"]
    assert settings.llm_allowed_assignees == ["alice", "@bob"]


def drafter_of(container: Container) -> object:
    (runner,) = [r for r in container.runners if r.spec.name == "ticket_creation_agent"]
    agent = runner.spec.handle.__self__  # type: ignore[attr-defined]
    assert isinstance(agent, TicketCreationAgent)
    return agent.drafter


def llm_settings(tmp_path: Path, **overrides: object) -> Settings:
    values: dict[str, object] = {
        "triage_engine": "llm",
        "llm_base_url": "http://127.0.0.1:9/v1",
        "llm_model": "some-model",
        **overrides,
    }
    return make_settings(f"sqlite:///{tmp_path / 'p.db'}", **values)


async def test_bootstrap_wires_the_llm_engine_over_local_with_a_close_hook(
    tmp_path: Path,
) -> None:
    container = bootstrap(llm_settings(tmp_path))
    try:
        engine = container.triage_agent.engine
        assert isinstance(engine, LlmTriageEngine) and isinstance(engine.local, LocalTriageEngine)
        assert isinstance(drafter_of(container), TemplateDrafter)
        assert len(container.close_hooks) == 1
        budget = container.metrics.registry.get_sample_value(
            "ai_pipeline_llm_budget_remaining_tokens"
        )
        assert budget == 1_000_000
    finally:
        for close in container.close_hooks:
            await close()
        for db in container.databases:
            await db.close()


async def test_llm_drafting_is_wired_by_its_setting(tmp_path: Path) -> None:
    container = bootstrap(llm_settings(tmp_path, triage_engine="local", llm_draft_issues=True))
    try:
        assert isinstance(container.triage_agent.engine, LocalTriageEngine)
        assert isinstance(drafter_of(container), LlmDrafter)
    finally:
        for close in container.close_hooks:
            await close()
        for db in container.databases:
            await db.close()


def test_the_llm_engine_without_an_endpoint_is_a_configuration_error(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="AI_PIPELINE_LLM_BASE_URL"):
        bootstrap(llm_settings(tmp_path, llm_base_url=None))
