"""The issue draft: complete, safe Markdown with the hidden marker."""

from __future__ import annotations

import re

import pytest

from ai_pipeline.domain.models import AssigneeSuggestion, Attachment, DuplicateCandidate
from ai_pipeline.drafting.marker import request_id_in
from ai_pipeline.drafting.template import (
    code_block,
    neutralise_mentions,
    occurrence_comment,
    render,
    render_occurrence,
)
from tests.factories import report, triage

GITHUB_BODY_LIMIT = 65_536  # GitHub answers 422 to a longer issue body or comment


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
    assert "\\[click\\](`javascript:alert(1`))" in body
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


# ------------------------------------------------------------------ items the body must fit

FULL = 65_536  # BugReport's MAX_TEXT
# Characters that each escaping step lengthens most: HTML (& → &amp;, < → &lt;), Markdown
# link/table syntax and backslashes (one more character each), mentions (a zero-width
# space), line-leading # (a backslash), backtick runs (a longer fence), forged markers.
WORST = {
    "html": "<&",
    "ampersand": "&",
    "markdown": "[]|\\",
    "mentions": "@a ",
    "headings": "\n#",
    "backticks": "`",
    "markers": "ai-pipeline:request=",
    "urls": "a://b ",
    "mixed": "<&[]|\\@a\n#`",
}


def worst_report(unit: str, attachments: int = 20) -> object:
    text = (unit * (FULL // len(unit) + 1))[:FULL]
    return report(
        title=(unit * 300)[:300],
        description=text,
        expected_behavior=text,
        actual_behavior=text,
        steps_to_reproduce=text,
        environment=text[:16_384],
        attachments=[
            {"name": (unit * 255)[:255], "url": ("https://x.example/" + unit * 2048)[:2048]}
        ]
        * attachments,
    )


def worst_triage() -> object:
    candidate = DuplicateCandidate(
        bug_report_id="B-1", issue_number=7, title="<&" * 150, similarity=0.9
    )
    return triage(
        duplicate_candidates=[candidate] * 5,
        duplicate_of=candidate,
        missing_information=["steps_to_reproduce", "environment"],
        assignee_suggestion=AssigneeSuggestion(
            assignee="alice", team="org/team", reason="<&" * 1000
        ),
    )


@pytest.mark.parametrize("kind", sorted(WORST))
def test_a_body_of_the_worst_characters_in_every_field_fits_githubs_limit(kind: str) -> None:
    body = render("req-9", worst_report(WORST[kind]), worst_triage()).body
    assert len(body) <= GITHUB_BODY_LIMIT, len(body)
    assert request_id_in(body) == "req-9"
    assert body.endswith("<!-- ai-pipeline:request=req-9 -->\n")
    assert "the full text is kept in the service" in body
    for section in ("Summary", "Environment", "Steps to reproduce", "Actual behaviour"):
        assert f"## {section}\n" in body


@pytest.mark.parametrize("kind", sorted(WORST))
def test_an_occurrence_comment_of_the_worst_characters_fits_githubs_limit(kind: str) -> None:
    occurrence = render_occurrence("req-9", worst_report(WORST[kind]), worst_triage())
    comment = occurrence_comment(occurrence, reports=10**9)
    assert len(comment) <= GITHUB_BODY_LIMIT, len(comment)
    assert request_id_in(comment) == "req-9"


def test_only_the_longest_sections_are_cut_and_a_short_one_stays_whole() -> None:
    amps = "&" * FULL
    body = render(
        "r", report(description=amps, actual_behavior=amps, expected_behavior="It saves."), triage()
    ).body
    assert "## Expected behaviour\nIt saves.\n" in body
    summary = body.split("## Summary\n")[1].split("\n\n## ")[0]
    assert summary.endswith("(truncated here; the full text is kept in the service)")
    assert summary.count("&amp;") > 5_000  # cut to fit, not emptied


def test_a_body_within_the_limit_is_not_touched_by_fitting() -> None:
    text = "Saving fails & the log says <error>."
    body = render("r", report(description=text), triage()).body
    assert "Saving fails &amp; the log says &lt;error&gt;." in body
    assert "truncated here" not in body


def test_attachments_beyond_what_fits_are_counted_not_dropped_silently() -> None:
    body = render("r", worst_report("<&"), triage()).body
    assert re.search(r"- … and \d+ more, kept in the service", body)


# ---------------------------------------------------------------- Markdown neutralisation


@pytest.mark.parametrize(
    "text",
    [
        "\\[click\\](https://evil.example/x)",
        "\\[click](https://evil.example/x)",
        "[click\\](javascript:alert(1))",
        "\\![x\\](https://t.example/p.gif)",
        "\\[ref\\]: https://evil.example",
    ],
)
def test_a_backslash_typed_before_a_bracket_cannot_revive_a_link(text: str) -> None:
    body = render("r", report(description=text), triage()).body
    summary = body.split("## Summary\n")[1].split("\n\n## ")[0]
    # Every bracket is preceded by an odd number of backslashes: escaped, not live.
    for match in re.finditer(r"(\\*)[\[\]]", summary):
        assert len(match.group(1)) % 2 == 1, summary


def test_a_backslash_typed_before_a_pipe_cannot_build_a_table() -> None:
    body = render("r", report(description="\\| a \\| b \\|\n\\|---\\|---\\|"), triage()).body
    summary = body.split("## Summary\n")[1].split("\n\n## ")[0]
    for match in re.finditer(r"(\\*)\|", summary):
        assert len(match.group(1)) % 2 == 1, summary


def test_backslashes_render_as_typed() -> None:
    body = render("r", report(description="C:\\Users\\ana and a\\b"), triage()).body
    assert "C:\\\\Users\\\\ana and a\\\\b" in body


@pytest.mark.parametrize(
    ("text", "code"),
    [
        ("see //evil.example/x now", "`//evil.example/x`"),
        ("[x](//evil.example/x)", "`//evil.example/x`"),
        ("go to https:evil.example/login", "`https:evil.example/login`"),
        ("[x](https:evil.example)", "`https:evil.example`"),
        ("run javascript:alert(document.domain)", "`javascript:alert(document.domain`"),
        ("data:text/html;base64,PHNjcmlwdD4=", "`data:text/html;base64,PHNjcmlwdD4=`"),
    ],
)
def test_protocol_relative_and_scheme_only_links_become_code(text: str, code: str) -> None:
    body = render("r", report(description=text), triage()).body
    assert code in body, body[:300]


def test_slashes_and_colons_in_prose_stay_prose() -> None:
    text = "Use a//b paths, a // comment, key: value and file: none."
    body = render("r", report(description=text), triage()).body
    assert text in body
