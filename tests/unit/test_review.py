"""The review queue's rules: what is held, what a correction changes, what the held
report does to the ticket-creation agent and the coordinator's timeout."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from pydantic import ValidationError

from ai_pipeline.agents.coordinator import _waiting_on
from ai_pipeline.agents.ticket_creation import TicketCreationAgent
from ai_pipeline.domain.events import (
    IssueDrafted,
    ReportTriaged,
    Step,
    StepChanged,
    StepStatus,
    decode,
)
from ai_pipeline.domain.models import DuplicateCandidate, SecurityBand
from ai_pipeline.domain.redaction import Redactor
from ai_pipeline.domain.request_state import apply, new_request
from ai_pipeline.domain.review import (
    Correction,
    HoldPolicy,
    corrected,
    settled_band,
    training_example,
)
from ai_pipeline.settings import Settings
from tests.factories import report, triage

pytestmark = pytest.mark.anyio


def test_the_policy_holds_only_what_it_names() -> None:
    unsure = triage(labels=["bug", "needs-triage"])
    secret = triage(security_sensitive=True)
    both = triage(labels=["needs-triage"], security_sensitive=True)
    assert secret.security_band is SecurityBand.PRIVATE  # a flag alone, as results once were
    assert HoldPolicy().hold_reasons(both) == []
    assert HoldPolicy.from_setting("security").hold_reasons(unsure) == []
    assert HoldPolicy.from_setting("security").hold_reasons(secret) == ["security"]
    assert HoldPolicy.from_setting(" security , needs-triage").hold_reasons(both) == [
        "needs-triage",
        "security",
    ]


def test_an_unknown_hold_reason_is_refused_at_start() -> None:
    with pytest.raises(ValueError, match="unknown review hold"):
        HoldPolicy.from_setting("security,everything")
    with pytest.raises(ValidationError, match="everything"):
        Settings(_env_file=None, review_hold="everything")  # type: ignore[call-arg]


def test_a_correction_replaces_what_it_names_with_certainty_and_drops_needs_triage() -> None:
    original = triage(
        labels=["bug", "needs-triage"],
        confidence={"type": 0.4, "priority": 0.3},
        suggested=["type"],
        duplicate_candidates=[
            DuplicateCandidate(bug_report_id="B-7", issue_number=7, similarity=0.5)
        ],
    )
    result = corrected(original, Correction(priority="critical", duplicate_of_issue=7))
    assert result.priority == "critical" and result.type == original.type
    assert result.confidence == {"type": 0.4, "priority": 1.0, "duplicate": 1.0}
    assert result.reasons == {"priority": "set in review", "duplicate": "set in review"}
    assert result.suggested == ["type"]  # not corrected: still a suggestion
    assert result.labels == ["bug", "priority: critical"]  # the corrected field's label
    assert result.duplicate_of is not None and result.duplicate_of.bug_report_id == "B-7"

    unlinked = corrected(result, Correction(duplicate_of_issue=None, labels=[" ui ", "ui"]))
    assert unlinked.duplicate_of is None and unlinked.labels == ["ui"]
    elsewhere = corrected(original, Correction(duplicate_of_issue=99))
    assert elsewhere.duplicate_of is not None and elsewhere.duplicate_of.issue_number == 99


def test_a_priority_or_severity_given_as_null_is_emptied_a_type_is_not() -> None:
    original = triage(labels=["bug", "priority: high", "severity: major"])
    result = corrected(original, Correction.model_validate({"priority": None, "type": None}))
    assert result.priority is None and result.severity == original.severity
    assert result.type == original.type
    assert result.labels == ["bug", "severity: major"]


def test_the_review_band_leaves_review_private_unless_the_flag_is_cleared() -> None:
    doubtful = triage(security_band="review", labels=["bug", "security"])
    assert doubtful.security_sensitive
    kept = corrected(doubtful, Correction())
    assert kept.security_band is SecurityBand.PRIVATE and kept.security_sensitive
    assert kept.reasons["security"] == "set in review" and "security" in kept.labels
    cleared = corrected(doubtful, Correction(security_sensitive=False))
    assert cleared.security_band is SecurityBand.PUBLIC and not cleared.security_sensitive
    assert "security" not in cleared.labels
    raised = corrected(triage(labels=["bug"]), Correction(security_sensitive=True))
    assert raised.security_band is SecurityBand.PRIVATE and raised.labels == ["bug", "security"]


def test_the_review_band_is_held_whatever_the_setting_while_filing_privately() -> None:
    doubtful = triage(security_band="review")
    assert HoldPolicy().hold_reasons(doubtful) == ["security-review"]
    assert HoldPolicy.from_setting("security").hold_reasons(doubtful) == [
        "security",
        "security-review",
    ]
    assert HoldPolicy(review_band=False).hold_reasons(doubtful) == []
    assert HoldPolicy().reasons == ("security-review",)
    private = Settings(_env_file=None)  # type: ignore[call-arg]
    public = Settings(_env_file=None, security_reports="public")  # type: ignore[call-arg]
    assert private.hold_policy().review_band and not public.hold_policy().review_band


def test_the_settled_band_is_triages_unless_a_release_settled_it() -> None:
    assert settled_band({"security_sensitive": True}, None, False) is SecurityBand.PRIVATE
    assert settled_band({}, None, False) is SecurityBand.PUBLIC
    review = {"security_band": "review", "security_sensitive": True}
    assert settled_band(review, {"reasons": []}, False) is SecurityBand.REVIEW
    assert settled_band(review, {"corrections": {}}, True) is SecurityBand.PRIVATE
    cleared = {"corrections": {"security_sensitive": False}}
    assert settled_band(review, cleared, True) is SecurityBand.PUBLIC


@pytest.mark.parametrize("label", ["", "a,b", "x" * 51, "line\nbreak"])
def test_a_label_github_would_refuse_is_refused(label: str) -> None:
    with pytest.raises(ValueError, match="label"):
        corrected(triage(), Correction(labels=[label]))


def test_a_correction_accepts_only_the_allowed_values() -> None:
    with pytest.raises(ValidationError):
        Correction.model_validate({"priority": "urgent"})
    with pytest.raises(ValidationError):
        Correction.model_validate({"assignee": "@someone"})


def test_the_training_example_is_a_row_of_the_export_format() -> None:
    r = report(title="Crash", description="It crashes")
    at = datetime(2026, 11, 27, tzinfo=UTC)
    example = training_example("rid", r, triage(security_sensitive=True), at)
    assert example["title"] == "Crash" and example["body"] == "It crashes"
    assert example["security"] is True and example["priority"] == "high"
    assert example["created_at"] == "2026-11-27T00:00:00+00:00"


async def test_the_ticket_creation_agent_holds_then_drafts_once_released() -> None:
    agent = TicketCreationAgent(Redactor(), hold=HoldPolicy(["security"]))
    event = ReportTriaged(request_id="r1", report=report(), triage=triage(security_sensitive=True))
    (held,) = await agent.handle(event)
    step = decode(held.value)
    assert isinstance(step, StepChanged) and step.step is Step.REVIEW
    assert step.status is StepStatus.STARTED and step.data == {"reasons": ["security"]}

    released = await agent.handle(event.model_copy(update={"reviewed": True}))
    assert any(isinstance(decode(m.value), IssueDrafted) for m in released)


def test_a_held_request_waits_on_review_and_a_released_one_on_drafting() -> None:
    t0 = datetime(2026, 11, 27, tzinfo=UTC)
    state = new_request("r1", "B-1", t0)
    steps = [
        (Step.TRIAGE, StepStatus.COMPLETED),
        (Step.REVIEW, StepStatus.STARTED),
        (Step.REVIEW, StepStatus.COMPLETED),
    ]
    seen = []
    for n, (step, status) in enumerate(steps, start=1):
        event = StepChanged(request_id="r1", step=step, status=status, at=t0 + timedelta(seconds=n))
        new = apply(state, event)
        assert new is not None
        state = new
        seen.append((state.held_for_review, _waiting_on(state)))
    assert seen == [
        (False, Step.TICKET_CREATION),  # triaged: drafting is next, review only if held
        (True, Step.REVIEW),
        (False, Step.TICKET_CREATION),
    ]


async def test_only_the_private_band_is_drafted_for_private_filing() -> None:
    agent = TicketCreationAgent(Redactor(), hold=HoldPolicy(review_band=False))
    for band, private in (("private", True), ("review", False), ("public", False)):
        event = ReportTriaged(request_id="r1", report=report(), triage=triage(security_band=band))
        drafted = [decode(m.value) for m in await agent.handle(event)]
        (issue,) = [d for d in drafted if isinstance(d, IssueDrafted)]
        assert issue.security_sensitive is private, band
