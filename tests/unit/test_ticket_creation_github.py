"""The ticket-creation agent beside the GitHub App mode: issues opened on GitHub get a
comment drafted, not an issue; reports sent to the API never link or show another
repository's issues."""

from __future__ import annotations

import pytest

from ai_pipeline.agents.ticket_creation import TicketCreationAgent
from ai_pipeline.domain.events import IssueDrafted, ReportTriaged, TriageCommentDrafted, decode
from ai_pipeline.domain.models import DuplicateCandidate
from ai_pipeline.domain.redaction import Redactor
from tests import factories

pytestmark = pytest.mark.anyio


def candidates() -> list[DuplicateCandidate]:
    return [
        DuplicateCandidate(
            bug_report_id="gh:secret-org:internal:5",
            issue_number=5,
            title="Internal outage",
            similarity=0.97,
        ),
        DuplicateCandidate(
            bug_report_id="gh:acme:widgets:7", issue_number=7, title="Crash on save", similarity=0.9
        ),
        DuplicateCandidate(
            bug_report_id="BUG-1", issue_number=3, title="Saving crashes", similarity=0.8
        ),
    ]


async def test_a_report_sent_to_the_api_never_shows_another_repositorys_issues() -> None:
    triage = factories.triage(duplicate_candidates=candidates())
    triage = triage.model_copy(update={"duplicate_of": triage.duplicate_candidates[0]})
    agent = TicketCreationAgent(Redactor(), filing_repository="acme/widgets")
    event = ReportTriaged(request_id="r-1", report=factories.report(), triage=triage)

    drafted = [decode(m.value) for m in await agent.handle(event) if m.topic == "ticket-creation"]

    (issue,) = drafted
    assert isinstance(issue, IssueDrafted)
    assert "Internal outage" not in issue.draft.body and "#5" not in issue.draft.body
    assert "#7" in issue.draft.body and "#3" in issue.draft.body
    assert issue.duplicate_of_issue != 5  # nor is the report added to that issue


async def test_an_issue_opened_on_github_gets_a_comment_drafted_not_an_issue() -> None:
    report = factories.report(id="gh:acme:widgets:9", metadata={"github": {"private": False}})
    event = ReportTriaged(request_id="r-2", report=report, triage=factories.triage())
    agent = TicketCreationAgent(Redactor(), filing_repository="acme/widgets")

    (drafted,) = [
        decode(m.value) for m in await agent.handle(event) if m.topic == "ticket-creation"
    ]

    assert isinstance(drafted, TriageCommentDrafted)
    assert (drafted.draft.repository, drafted.draft.issue_number) == ("acme/widgets", 9)
