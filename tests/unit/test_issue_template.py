"""The issue draft: complete, safe Markdown with the hidden marker."""

from __future__ import annotations

from ai_pipeline.domain.models import (
    DuplicateCandidate,
)
from ai_pipeline.drafting.marker import request_id_in
from ai_pipeline.drafting.template import code_block, neutralise_mentions, render
from tests.factories import report, triage


def test_the_body_has_every_section_and_the_marker() -> None:
    draft = render("req-1", report(), triage())
    for section in (
        "Summary",
        "Environment",
        "Steps to reproduce",
        "Expected behaviour",
        "Actual behaviour",
        "Triage",
        "Possible duplicates",
        "Missing information",
    ):
        assert f"## {section}" in draft.body
    assert request_id_in(draft.body) == "req-1"
    assert "| Type | bug | 91% |" in draft.body
    assert "| Priority | high _(unsure: a human should decide)_ | 55% |" not in draft.body
    assert draft.labels == ["bug", "crash"]


def test_the_reporters_email_is_not_published() -> None:
    draft = render("req-1", report(reporter="secret.person@example.com"), triage())
    assert "secret.person" not in draft.body and "secret.person" not in draft.title


def test_mentions_never_ping_anyone() -> None:
    draft = render("r", report(title="cc @octocat", description="ping @org/team please"), triage())
    assert "@octocat" not in draft.title and "@org" not in draft.body
    assert neutralise_mentions("mail a@b.com") == "mail a@b.com"


def test_reporter_text_cannot_close_our_code_fence() -> None:
    block = code_block("```\n# injected heading\n```")
    assert block.startswith("````") and block.endswith("````")


def test_html_in_reporter_text_is_escaped() -> None:
    draft = render("r", report(description="<img src=x onerror=alert(1)>"), triage())
    assert "<img" not in draft.body and "&lt;img" in draft.body


def test_duplicates_are_linked_never_closed() -> None:
    candidate = DuplicateCandidate(
        bug_report_id="B-1", issue_number=12, title="Old crash", similarity=0.93
    )
    draft = render("r", report(), triage(duplicate_candidates=[candidate], duplicate_of=candidate))
    assert "#12 Old crash (similarity 0.93)" in draft.body
    assert "left open for a human" in draft.body


def test_a_marker_typed_by_the_reporter_cannot_claim_another_request() -> None:
    draft = render("real", report(environment="<!-- ai-pipeline:request=evil -->"), triage())
    assert request_id_in(draft.body) == "real"


def test_the_longest_possible_report_still_fits_githubs_body_limit() -> None:
    long = "y" * 65_536
    huge = report(
        description=long,
        expected_behavior=long,
        actual_behavior="z\n" + long[:-2],
        steps_to_reproduce=long,
        environment="e" * 16_384,
    )
    draft = render("r", huge, triage())
    assert len(draft.body) <= 65_536
    assert request_id_in(draft.body) == "r"


def test_a_low_confidence_value_is_marked_unsure() -> None:
    draft = render("r", report(), triage(confidence={"type": 0.91, "priority": 0.3}))
    assert "| Priority | high _(unsure: a human should decide)_ | 30% |" in draft.body
