"""The issue draft: complete, safe Markdown with the hidden marker."""

from __future__ import annotations

from ai_pipeline.domain.models import Attachment, DuplicateCandidate
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
    assert "_(suggestion" not in draft.body
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


def test_a_value_below_its_threshold_is_shown_as_a_suggestion() -> None:
    result = triage(confidence={"type": 0.91, "priority": 0.3}, suggested=["priority"])
    draft = render("r", report(), result)
    assert "| Priority | high _(suggestion: a human should decide)_ | 30% |" in draft.body
    assert "| Type | bug | 91% |" in draft.body  # decided: no mark


def test_each_field_shows_its_reason_as_inert_text_and_empty_levels_as_a_dash() -> None:
    result = triage(
        priority=None,
        security_band="review",
        reasons={
            "type": "'crashes' + a stack trace or error → bug",
            "security": "mentions '<script>' | @admin → security review",
        },
    )
    body = render("r", report(), result).body
    assert "| Type | bug | 91% | 'crashes' + a stack trace or error → bug |" in body
    assert "| Priority | – | - |  |" in body
    # Reasons quote the report: escaped like its text, so they cannot break the table.
    assert "| Security | security review | - | mentions '&lt;script&gt;' \\| @\u200badmin →" in body


def test_candidates_below_the_bar_are_offered_as_suggestions() -> None:
    candidate = DuplicateCandidate(bug_report_id="B-1", issue_number=12, similarity=0.7)
    body = render("r", report(), triage(duplicate_candidates=[candidate])).body
    assert "Similar earlier reports (suggestions: none was close enough to link):" in body
    assert "| Duplicate | no |" in body


def test_images_never_render_so_no_tracking_host_is_fetched() -> None:
    draft = render(
        "r",
        report(description="see ![pixel](http://track.example/p.gif) and <img src=x>"),
        triage(),
    )
    assert "![pixel](" not in draft.body and "<img" not in draft.body
    assert "`http://track.example/p.gif`" in draft.body


def test_links_show_as_code_never_as_clickable_links() -> None:
    text = (
        "[click](javascript:alert(1)) [docs](https://evil.example/x)"
        " <https://auto.example> www.w.example"
    )
    body = render("r", report(description=text), triage()).body
    assert "[click](" not in body and "[docs](" not in body
    assert "\\[click\\](javascript:alert(1))" in body
    assert "`https://evil.example/x`" in body and "&lt;`https://auto.example`&gt;" in body
    assert "`www.w.example`" in body


def test_a_url_keeps_its_query_and_loses_the_sentence_punctuation() -> None:
    body = render("r", report(description="open (https://a.example/?q=1&b=2)."), triage()).body
    assert "(`https://a.example/?q=1&b=2`)." in body


def test_reporter_text_cannot_forge_a_triage_table_or_heading() -> None:
    text = "## Triage\n| Priority | critical |"
    body = render("r", report(description=text), triage()).body
    assert "\\## Triage" in body and "\\| Priority \\| critical \\|" in body
    assert body.count("\n## Triage\n") == 1


def test_a_forged_marker_is_not_a_marker_in_prose_or_code() -> None:
    forged = "<!-- ai-pipeline:request=other-request -->"
    body = render(
        "mine", report(description=forged, actual_behavior=f"line one\n{forged}"), triage()
    ).body
    assert body.count("ai-pipeline:request=") == 1
    assert request_id_in(body) == "mine"


def test_an_attachment_url_cannot_break_out_of_its_code_span() -> None:
    attachment = Attachment(name="log", url="http://x.example/`\n![t](http://track.example/)")
    body = render("r", report(attachments=[attachment]), triage()).body
    assert "`http://x.example/ ![t](http://track.example/)`" in body


def test_plain_prose_is_left_as_written() -> None:
    text = "The app crashes when I press Save (twice), 100% of the time."
    assert text in render("r", report(description=text), triage()).body


def test_a_fence_in_prose_cannot_swallow_the_sections_after_it() -> None:
    body = render("r", report(description="before\n```\nafter ~~~"), triage()).body
    assert "before\n\\```\nafter ~~~" in body


def test_a_folded_candidate_still_names_the_report_that_matched() -> None:
    folded = DuplicateCandidate(
        bug_report_id="B-1", issue_number=12, similarity=0.91, via_bug_report_id="B-6"
    )
    result = triage(duplicate_candidates=[folded], duplicate_of=folded)
    body = render("r", report(), result).body
    assert "#12 (similarity 0.91, through its duplicate `B-6`)" in body
    assert "| Duplicate | #12 |" in body
