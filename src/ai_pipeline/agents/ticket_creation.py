"""The ticket-creation agent: a triaged report in, an issue draft out."""

from __future__ import annotations

from collections.abc import Sequence

from ai_pipeline.agents.messages import step_ran, to_topic
from ai_pipeline.domain.errors import PermanentError
from ai_pipeline.domain.events import Event, IssueDrafted, ReportTriaged, Step, Topic, utcnow
from ai_pipeline.drafting.template import render
from ai_pipeline.ports import OutgoingMessage


async def draft_issue(event: Event) -> Sequence[OutgoingMessage]:
    if not isinstance(event, ReportTriaged):
        raise PermanentError(f"ticket-creation agent cannot handle {event.kind}")
    started = utcnow()
    draft = render(event.request_id, event.report, event.triage)
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
