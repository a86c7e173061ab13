"""The LLM drafter: only the title and an overview are LLM-written; facts stay verbatim."""

from __future__ import annotations

import pytest

from ai_pipeline.adapters.llm import TIMEOUT, LlmError
from ai_pipeline.drafting.llm_draft import DRAFT_MAX_TOKENS, DRAFT_SCHEMA, LlmDrafter
from ai_pipeline.drafting.template import render
from ai_pipeline.observability.metrics import Metrics
from ai_pipeline.triage.local import LocalTriageEngine
from tests.factories import report
from tests.unit.test_llm_triage import FakeChat

pytestmark = pytest.mark.anyio

FACTS = {
    "steps_to_reproduce": ["Open `C:\\data\\big.csv` (2 GB)", "Press <Ctrl>+S & wait"],
    "environment": {"os": "Windows 11 23H2", "version": "2.3.1-rc.2+build.77"},
    "actual_behavior": 'Traceback (most recent call last):\n  File "app.py", line 3\nKeyError: 1',
}


@pytest.fixture(scope="module")
def local() -> LocalTriageEngine:
    return LocalTriageEngine.load()


async def test_only_the_title_and_an_overview_are_llm_written(local: LocalTriageEngine) -> None:
    r = report(**FACTS)
    triage = local.decide(r, [])
    chat = FakeChat({"title": "Saving a 2 GB CSV crashes", "summary": "Saving large files fails."})
    draft = await LlmDrafter(chat, Metrics()).draft("req-1", r, triage)
    template = render("req-1", r, triage)
    assert draft.title == "Saving a 2 GB CSV crashes"
    assert draft.body.startswith("## Overview\nSaving large files fails.")
    assert draft.body.endswith(template.body)  # the template, byte for byte, after it
    assert draft.labels == template.labels
    for fact in ["2.3.1-rc.2+build.77", "Windows 11 23H2", FACTS["actual_behavior"]]:
        assert fact in draft.body


async def test_llm_text_is_treated_like_reporter_text(local: LocalTriageEngine) -> None:
    r = report()
    chat = FakeChat(
        {"title": "Crash\n@maintainer please fix", "summary": "<script>x</script> ping @alice"}
    )
    draft = await LlmDrafter(chat, Metrics()).draft("req-1", r, local.decide(r, []))
    assert "\n" not in draft.title and "@maintainer" not in draft.title
    overview = draft.body.split("\n\n", 1)[0]
    assert "<script>" not in overview and "&lt;script&gt;" in overview
    assert "@alice" not in overview


@pytest.mark.parametrize("answer", [LlmError(TIMEOUT), "garbage", {"title": "", "summary": ""}])
async def test_without_a_usable_answer_the_template_draft_is_used(
    local: LocalTriageEngine, answer: object
) -> None:
    r = report()
    metrics = Metrics()
    triage = local.decide(r, [])
    draft = await LlmDrafter(FakeChat(answer), metrics).draft("req-1", r, triage)  # type: ignore[arg-type]
    assert draft == render("req-1", r, triage)
    fallbacks = metrics.registry.get_sample_value(
        "ai_pipeline_llm_fallbacks_total", {"component": "draft", "reason": TIMEOUT}
    ) or metrics.registry.get_sample_value(
        "ai_pipeline_llm_fallbacks_total", {"component": "draft", "reason": "invalid_output"}
    )
    assert fallbacks == 1


def test_the_draft_call_may_spend_a_token_per_character_of_the_longest_answer() -> None:
    """A small model writes the summary to its maximum length; a cut answer is invalid."""
    properties = DRAFT_SCHEMA["properties"]
    assert isinstance(properties, dict)
    longest = sum(field["maxLength"] for field in properties.values())
    assert longest + len('{"title": "", "summary": ""}') <= DRAFT_MAX_TOKENS
