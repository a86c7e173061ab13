"""The ticket-creation agent: a triaged report in, an issue draft out.

Redaction and rendering read the report's text: they run on worker threads within the
report's budget (``agents.offload``); a report that spends it is dead-lettered."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from ai_pipeline.agents.messages import step_ran, to_topic
from ai_pipeline.agents.offload import DEFAULT_BUDGET_SECONDS, off_loop, report_budget
from ai_pipeline.domain.errors import PermanentError
from ai_pipeline.domain.events import (
    Event,
    IssueDrafted,
    ReportTriaged,
    Step,
    StepChanged,
    StepStatus,
    Topic,
    TriageCommentDrafted,
    utcnow,
)
from ai_pipeline.domain.github import InPlaceDraft, origin_of, shown_where_filed
from ai_pipeline.domain.models import BugReport, IssueDraft, SecurityBand, TriageResult
from ai_pipeline.domain.redaction import Redactor, redact_report
from ai_pipeline.domain.review import HoldPolicy
from ai_pipeline.drafting.drafter import IssueDrafter, TemplateDrafter
from ai_pipeline.drafting.github_comment import GitHubCommentDrafter
from ai_pipeline.drafting.template import render, render_occurrence
from ai_pipeline.ports import OutgoingMessage
from ai_pipeline.triage.rules import DUPLICATE_LABEL


class TicketCreationAgent:
    """Drafts the issue from a redacted copy of the report: the filed text leaves the
    service; the original stays in the private state store. An issue opened on GitHub
    gets the draft of our comment on it instead (``drafting.github_comment``).

    A report the hold policy names waits in the review step instead (``domain.review``);
    a maintainer's release sends it back here, marked reviewed."""

    def __init__(
        self,
        redactor: Redactor,
        drafter: IssueDrafter | None = None,
        hold: HoldPolicy | None = None,
        in_place: GitHubCommentDrafter | None = None,
        filing_repository: str | None = None,
        cpu_budget: float = DEFAULT_BUDGET_SECONDS,
    ):
        """``filing_repository``: where reports sent to the API are filed, if on GitHub."""
        self.redactor = redactor
        self.drafter: IssueDrafter = drafter or TemplateDrafter()
        self.hold = hold or HoldPolicy()
        self.in_place = in_place or GitHubCommentDrafter()
        self.filing_repository = filing_repository
        self.cpu_budget = cpu_budget

    async def handle(self, event: Event) -> Sequence[OutgoingMessage]:
        if not isinstance(event, ReportTriaged):
            raise PermanentError(f"ticket-creation agent cannot handle {event.kind}")
        reasons = [] if event.reviewed else self.hold.hold_reasons(event.triage)
        if reasons:
            held = StepChanged(
                request_id=event.request_id,
                step=Step.REVIEW,
                status=StepStatus.STARTED,
                data={"reasons": reasons},
            )
            return [to_topic(Topic.STATUS_UPDATES, event.request_id, held)]
        with report_budget(self.cpu_budget):
            started = utcnow()
            report, triage = await off_loop(redacted, event, self.redactor)
            origin = origin_of(event.report.id)
            if origin is not None:  # opened on GitHub: a comment on it, not a new issue
                in_place = await self.in_place.draft(origin, report, triage)
                return in_place_messages(event, in_place, started)
            triage = filed_candidates(triage, self.filing_repository)
            draft = await self.drafter.draft(event.request_id, report, triage)
            return await off_loop(drafted_messages, event, draft, started, report, triage)


def draft_issue(event: ReportTriaged, redactor: Redactor) -> list[OutgoingMessage]:
    """The template draft, synchronously (tests and tools)."""
    started = utcnow()
    report, triage = redacted(event, redactor)
    draft = render(event.request_id, report, triage)
    return drafted_messages(event, draft, started, report, triage)


def filed_candidates(triage: TriageResult, filing_repository: str | None) -> TriageResult:
    """Triage without the duplicate candidates an issue filed there may not show (issues
    opened on other GitHub repositories, see ``domain.github.shown_where_filed``)."""
    kept = [
        c
        for c in triage.duplicate_candidates
        if shown_where_filed(c.bug_report_id, filing_repository)
    ]
    if len(kept) == len(triage.duplicate_candidates):
        return triage
    duplicate_of = triage.duplicate_of
    update: dict[str, Any] = {"duplicate_candidates": kept}
    if duplicate_of is not None and not shown_where_filed(
        duplicate_of.bug_report_id, filing_repository
    ):
        update["duplicate_of"] = None
        update["labels"] = [label for label in triage.labels if label != DUPLICATE_LABEL]
    return triage.model_copy(update=update)


def redacted(event: ReportTriaged, redactor: Redactor) -> tuple[BugReport, TriageResult]:
    """What a draft is written from: the report and duplicate titles, redacted."""
    triage = event.triage.model_copy(
        update={
            "duplicate_candidates": [
                c.model_copy(update={"title": redactor.redact(c.title)})
                for c in event.triage.duplicate_candidates
            ]
        }
    )
    return redact_report(event.report, redactor), triage


def drafted_messages(
    event: ReportTriaged,
    draft: IssueDraft,
    started: datetime,
    report: BugReport,
    triage: TriageResult,
) -> list[OutgoingMessage]:
    """``report`` and ``triage`` are the redacted copies the draft was written from."""
    canonical = triage.duplicate_of
    issue = canonical.issue_number if canonical is not None else None
    drafted = IssueDrafted(
        request_id=event.request_id,
        bug_report_id=event.report.id,
        draft=draft,
        # Only the private band is filed privately: a review-band report has been released
        # by a maintainer (who settled it) or is filed where security reports are public.
        security_sensitive=triage.security_band is SecurityBand.PRIVATE,
        duplicate_of_issue=issue,
        occurrence=render_occurrence(event.request_id, report, triage) if issue else None,
    )
    data = {"title": draft.title, "labels": draft.labels, "body_chars": len(draft.body)}
    return [
        *step_ran(event.request_id, Step.TICKET_CREATION, started, utcnow(), data),
        to_topic(Topic.TICKET_CREATION, event.request_id, drafted),
    ]


def in_place_messages(
    event: ReportTriaged, draft: InPlaceDraft, started: datetime
) -> list[OutgoingMessage]:
    drafted = TriageCommentDrafted(
        request_id=event.request_id, bug_report_id=event.report.id, draft=draft
    )
    data = {
        "comment_on": f"{draft.repository}#{draft.issue_number}",
        "labels": draft.labels,
        "questions": len(draft.questions),
        "body_chars": len(draft.body),
    }
    return [
        *step_ran(event.request_id, Step.TICKET_CREATION, started, utcnow(), data),
        to_topic(Topic.TICKET_CREATION, event.request_id, drafted),
    ]
