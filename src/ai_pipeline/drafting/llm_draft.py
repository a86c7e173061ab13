"""The LLM drafter: a clearer title and a short overview, the template for the rest.

Only two things are LLM-written: the title and one overview paragraph placed above the
template's body. The template body follows unchanged, so the reporter's own facts
(description, steps, versions, error text) reach the issue byte for byte as the template
renders them. LLM text is treated like reporter text: HTML escaped, mentions
neutralised, the title kept to one line. On any failure the template draft is used as is
and the reason counted in ``ai_pipeline_llm_fallbacks_total{component="draft"}``.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, ValidationError

from ai_pipeline.adapters.llm import INVALID_OUTPUT, ChatModel, LlmError
from ai_pipeline.agents.offload import off_loop
from ai_pipeline.domain.models import BugReport, IssueDraft, TriageResult
from ai_pipeline.drafting.template import GITHUB_BODY_LIMIT, one_line_title, prose, render
from ai_pipeline.observability.logging import get_logger
from ai_pipeline.observability.metrics import Metrics
from ai_pipeline.triage import prompts

log = get_logger(__name__)

MAX_SUMMARY = 800
TITLE_CHARS, SUMMARY_CHARS = 100, 400
DRAFT_SCHEMA = {
    "type": "object",
    "properties": {
        "title": {"type": "string", "minLength": 8, "maxLength": TITLE_CHARS},
        "summary": {"type": "string", "minLength": 20, "maxLength": SUMMARY_CHARS},
    },
    "required": ["title", "summary"],
    "additionalProperties": False,
}
# Enough for the longest answer the schema allows, about one token per character in the
# worst case: a small model writes summaries to the very limit, and with the global cap of
# 300 tokens one such answer in fifteen was cut and fell back to the template.
DRAFT_MAX_TOKENS = TITLE_CHARS + SUMMARY_CHARS + 48


class DraftAnswer(BaseModel):
    model_config = ConfigDict(extra="ignore")
    title: str
    summary: str


def overview(summary: str) -> str:
    """The LLM's paragraph as it appears above the template body."""
    return (
        f"## Overview\n{prose(summary, MAX_SUMMARY)}\n\n"
        f"<sub>Title and overview drafted by an LLM (prompt {prompts.PROMPT_VERSION});"
        " the reporter's own words follow.</sub>\n\n"
    )


# The longest overview there can be: every character of the summary escaped the longest way.
_OVERVIEW_ROOM = len(overview("&" * (MAX_SUMMARY + 1)))


class LlmDrafter:
    """Implements ``IssueDrafter``."""

    def __init__(self, chat: ChatModel, metrics: Metrics) -> None:
        self.chat = chat
        self.metrics = metrics

    async def draft(self, request_id: str, report: BugReport, triage: TriageResult) -> IssueDraft:
        # Room above the template for the longest overview there can be.
        template = await off_loop(
            render, request_id, report, triage, GITHUB_BODY_LIMIT - _OVERVIEW_ROOM
        )
        try:
            completion = await self.chat.complete(
                prompts.draft_messages(report, triage),
                "issue_draft",
                DRAFT_SCHEMA,
                max_tokens=DRAFT_MAX_TOKENS,
            )
            answer = _parse(completion.content)
        except LlmError as error:
            self.metrics.llm_fallbacks.labels("draft", error.reason).inc()
            log.warning("llm_draft_fallback", reason=error.reason, error=str(error))
            return template
        title = one_line_title(answer.title)
        summary = answer.summary.strip()
        if len(title) < 3 or not summary:
            self.metrics.llm_fallbacks.labels("draft", INVALID_OUTPUT).inc()
            return template
        return template.model_copy(
            update={"title": title, "body": overview(summary) + template.body}
        )


def _parse(content: str) -> DraftAnswer:
    try:
        return DraftAnswer.model_validate_json(content)
    except ValidationError as error:
        raise LlmError(INVALID_OUTPUT, "answer does not match the schema") from error
