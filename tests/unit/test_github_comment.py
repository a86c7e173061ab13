"""Our one comment on a GitHub issue, and which labels we may add or remove."""

from __future__ import annotations

from typing import Any

import pytest

from ai_pipeline.domain.github import IssueRef, Origin
from ai_pipeline.domain.github_labels import LabelDecision, decide_labels, family_of, value_in
from ai_pipeline.domain.models import AssigneeSuggestion, DuplicateCandidate, SecurityBand
from ai_pipeline.drafting.github_comment import (
    MARKER,
    GitHubCommentDrafter,
    is_ours,
    is_quiet,
    render_comment,
)
from tests import factories

pytestmark = pytest.mark.anyio
ORIGIN = Origin(IssueRef("acme/widgets", 9), 1)


def gh_report(private: bool = False, trigger: str = "opened") -> Any:
    github = {
        "repository": "acme/widgets",
        "repository_url": "https://github.com/acme/widgets",
        "private": private,
        "trigger": trigger,
    }
    return factories.report(id="gh:acme:widgets:9", metadata={"source": "github", "github": github})


def candidate(
    bug_report_id: str, similarity: float, title: str = "", number: int | None = None
) -> DuplicateCandidate:
    return DuplicateCandidate(
        bug_report_id=bug_report_id, issue_number=number, title=title, similarity=similarity
    )


# --- label families and humans ------------------------------------------------------------


@pytest.mark.parametrize(
    ("label", "family"),
    [
        ("bug", "type"),
        ("Feature", "type"),
        ("enhancement", "type"),
        ("kind/bug", "type"),
        ("type: question", "type"),
        ("priority: high", "priority"),
        ("P1", "priority"),
        ("prio/low", "priority"),
        ("severity: major", "severity"),
        ("S2", "severity"),
        ("area: ui", "area"),
        ("component/network", "area"),
        ("needs-info", None),
        ("security", None),
        ("good first issue", None),
    ],
)
def test_labels_are_sorted_into_families(label: str, family: str | None) -> None:
    assert family_of(label) == family


def test_a_family_value_is_read_without_its_prefix() -> None:
    assert value_in("priority: high") == "high" and value_in("kind/bug") == "bug"
    assert value_in("P1") == "P1"


def test_a_persons_label_in_a_family_holds_ours_back() -> None:
    wanted = ["bug", "priority: high", "area: ui", "needs-info"]
    decision = decide_labels(wanted, ["feature", "P2"], [], [], "apply")
    assert decision.add == ["area: ui", "needs-info"]
    assert decision.held_back == ["bug", "priority: high"] and decision.remove == []


def test_a_label_a_person_removed_is_never_added_again() -> None:
    decision = decide_labels(["bug", "needs-info"], [], ["bug"], ["needs-info"], "apply")
    assert decision.add == ["bug"] and decision.held_back == ["needs-info"]


def test_only_our_own_labels_are_ever_removed() -> None:
    live = ["enhancement", "needs-info", "priority: low", "wontfix"]
    ours = ["needs-info", "priority: low"]
    decision = decide_labels(["enhancement", "priority: high"], live, ours, [], "apply")
    # Our needs-info goes (answered), our old priority gives way to the new one; the
    # person's labels stay whatever triage says now.
    assert decision.remove == ["needs-info", "priority: low"]
    assert decision.add == ["priority: high"]
    kept = decide_labels(["bug"], ["needs-info"], [], [], "apply")  # a person's needs-info
    assert kept.remove == []


def test_suggest_mode_changes_nothing_and_suggests_what_apply_would_add() -> None:
    decision = decide_labels(["bug", "area: ui"], ["area: ui"], [], [], "suggest")
    assert decision == LabelDecision(suggest=["bug"])


# --- the comment ----------------------------------------------------------------------------


async def test_the_comment_shows_fields_with_confidence_questions_and_the_owner() -> None:
    triage = factories.triage(
        labels=["bug", "priority: high", "needs-info"],
        confidence={"type": 0.91, "priority": 0.55, "severity": 0.42, "category": 0.8},
        missing_information=["steps_to_reproduce"],
        assignee_suggestion=AssigneeSuggestion(
            team="acme/frontend", reason="category ui matches category:ui (ROUTING, line 2)"
        ),
        suggested=["severity"],  # below its threshold: shown, not labelled
    )
    draft = await GitHubCommentDrafter().draft(ORIGIN, gh_report(), triage)
    body = render_comment(draft, LabelDecision(suggest=["bug", "priority: high"]), "suggest")

    assert body.startswith(MARKER + "\n") and is_ours(body)
    assert "**Suggested labels:** `bug`, `priority: high`" in body
    assert "| Type | bug | 91% |" in body and "| Priority | high | 55% |" in body
    assert "| Severity | major _(unsure: left to a maintainer)_ | 42% |" in body
    assert "Why" not in body  # no reasons given, no column for them
    assert "What exact steps reproduce the problem?" in body
    assert "`@acme/frontend`" in body and "@acme" not in body.replace("`@acme", "")
    assert "<details><summary>Details</summary>" in body
    assert draft.waiting == "info" and draft.substance and draft.questions


async def test_reasons_and_bands_show_when_triage_gives_them() -> None:
    explained = factories.triage(
        labels=["bug"],
        reasons={"type": "a stack trace and 'crash'"},
        security_band=SecurityBand.PUBLIC,
    )
    draft = await GitHubCommentDrafter().draft(ORIGIN, gh_report(), explained)
    assert "| Confidence | Why |" in draft.body and "(band: public)" in draft.body
    assert "| Type | bug | 91% | a stack trace and 'crash' |" in draft.body


async def test_likely_duplicates_link_this_repository_only_open_ones_first() -> None:
    states = {9: None, 3: "closed", 4: "open", 5: "open"}

    async def state_of(issue: IssueRef) -> str | None:
        return states.get(issue.number)

    triage = factories.triage(
        duplicate_candidates=[
            candidate("gh:acme:widgets:3", 0.95, "Crash on save <b>"),
            candidate("gh:other:repo:8", 0.94, "Private title"),  # another repository
            candidate("BUG-1", 0.93, "Filed from the API", number=4),
            candidate("BUG-2", 0.92, "On the local tracker"),  # no GitHub issue
            candidate("gh:acme:widgets:5", 0.70, "Barely similar"),
        ],
    )
    triage = triage.model_copy(update={"duplicate_of": triage.duplicate_candidates[0]})
    drafter = GitHubCommentDrafter(state_of, filing_repository="acme/widgets")
    draft = await drafter.draft(ORIGIN, gh_report(), triage)
    likely = draft.body.split("**Likely duplicates:**")[1].split("\n\n")[0]

    assert likely.index("#4") < likely.index("#3")  # open first
    assert "(open, similarity 0.93)" in likely and "(closed, similarity 0.95)" in likely
    assert "&lt;b&gt;" in likely  # reporter text, neutralised
    assert "Private title" not in draft.body and "other/repo" not in draft.body
    assert "local tracker" not in draft.body
    assert "#5 (0.70)" in draft.body  # a weaker match, folded in the details
    assert draft.substance


async def test_a_security_issue_on_a_public_repository_gets_a_notice_and_no_details() -> None:
    triage = factories.triage(
        security_sensitive=True,
        labels=["bug", "security"],
        missing_information=["steps_to_reproduce"],
        assignee_suggestion=AssigneeSuggestion(assignee="sec-lead", reason="label security"),
        duplicate_candidates=[candidate("gh:acme:widgets:3", 0.99, "SQL injection in login")],
    )
    public = await GitHubCommentDrafter().draft(ORIGIN, gh_report(private=False), triage)
    body = render_comment(public, LabelDecision(), "apply")
    assert public.security_notice and public.labels == [] and public.assignee == "sec-lead"
    assert "https://github.com/acme/widgets/security/policy" in body
    assert "cc @sec-lead" in body
    for detail in ("SQL injection", "steps", "Type", "security`", "#3"):
        assert detail not in body, detail
    private = await GitHubCommentDrafter().draft(ORIGIN, gh_report(private=True), triage)
    assert not private.security_notice and "security" in private.labels


async def test_a_security_doubt_on_a_public_issue_gets_the_ordinary_comment_naming_it() -> None:
    """The review band is a doubt: no notice that hides the author's own public text, but
    the details say the band so a maintainer can look."""
    triage = factories.triage(
        security_band=SecurityBand.REVIEW,
        labels=["bug"],
        missing_information=["steps_to_reproduce"],
    )
    draft = await GitHubCommentDrafter().draft(ORIGIN, gh_report(private=False), triage)
    assert not draft.security_notice
    assert "Security-sensitive: yes (band: review)" in draft.body
    assert "What exact steps reproduce the problem?" in draft.body


async def test_nothing_useful_to_say_is_quiet() -> None:
    triage = factories.triage(labels=["bug"], missing_information=[])
    draft = await GitHubCommentDrafter().draft(ORIGIN, gh_report(), triage)
    assert is_quiet(draft, LabelDecision())  # every label already set
    assert not is_quiet(draft, LabelDecision(suggest=["bug"]))
    assert not is_quiet(draft, LabelDecision(add=["bug"]))


async def test_an_answered_check_thanks_the_author() -> None:
    triage = factories.triage(labels=["bug"], missing_information=[])
    draft = await GitHubCommentDrafter().draft(ORIGIN, gh_report(trigger="answered"), triage)
    assert "thank you" in draft.body and draft.waiting is None


def test_a_quoted_marker_is_not_ours() -> None:
    assert not is_ours(f"> {MARKER}\n> Triaged")
    assert is_ours(f"\n{MARKER}\nTriaged")
