"""The ticket-creation agent: a triaged report in, an issue draft out."""

from __future__ import annotations

from collections.abc import Sequence

from ai_pipeline.agents.messages import step_ran, to_topic
from ai_pipeline.domain.errors import PermanentError
from ai_pipeline.domain.events import Event, IssueDrafted, ReportTriaged, Step, Topic, utcnow
from ai_pipeline.domain.redaction import Redactor, redact_report
from ai_pipeline.drafting.template import render
from ai_pipeline.ports import OutgoingMessage


class TicketCreationAgent:
    """Drafts the issue from a redacted copy of the report: the filed text leaves the
    service; the original stays in the private state store."""

    def __init__(self, redactor: Redactor):
        self.redactor = redactor

    async def handle(self, event: Event) -> Sequence[OutgoingMessage]:
        if not isinstance(event, ReportTriaged):
            raise PermanentError(f"ticket-creation agent cannot handle {event.kind}")
        return draft_issue(event, self.redactor)


def draft_issue(event: ReportTriaged, redactor: Redactor) -> list[OutgoingMessage]:
    started = utcnow()
    triage = event.triage.model_copy(
        update={
            "duplicate_candidates": [
                c.model_copy(update={"title": redactor.redact(c.title)})
                for c in event.triage.duplicate_candidates
            ]
        }
    )
    draft = render(event.request_id, redact_report(event.report, redactor), triage)
    drafted = IssueDrafted(
        request_id=event.request_id,
        bug_report_id=event.report.id,
        draft=draft,
        security_sensitive=event.triage.security_sensitive,
    )
    data = {"title": draft.title, "labels": draft.labels, "body_chars": len(draft.body)}
    return [
        *step_ran(event.request_id, Step.TICKET_CREATION, started, utcnow(), data),
        to_topic(Topic.TICKET_CREATION, event.request_id, drafted),
    ]
