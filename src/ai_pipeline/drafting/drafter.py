"""The drafting port: a triaged, redacted report in, an issue draft out.

The ticket-creation agent holds one ``IssueDrafter`` and never asks which kind: the
template (default) or the LLM drafter (``AI_PIPELINE_LLM_DRAFT_ISSUES``), chosen in
``bootstrap.py``.
"""

from __future__ import annotations

from typing import Protocol

from ai_pipeline.agents.offload import off_loop
from ai_pipeline.domain.models import BugReport, IssueDraft, TriageResult
from ai_pipeline.drafting.template import render


class IssueDrafter(Protocol):
    async def draft(self, request_id: str, report: BugReport, triage: TriageResult) -> IssueDraft:
        """``report`` is already redacted: everything in the draft may leave the service."""
        ...


class TemplateDrafter:
    """The deterministic template (``drafting.template.render``), rendered on a worker
    within the report's budget."""

    async def draft(self, request_id: str, report: BugReport, triage: TriageResult) -> IssueDraft:
        return await off_loop(render, request_id, report, triage)
