"""The one comment we keep on an issue triaged in place (GitHub App mode), and its labels.

The ticket-creation agent drafts it from the triage result (``GitHubCommentDrafter``); the
tracker agent adds the labels line once it knows the issue's labels and what people decided
(``render_comment``), posts it once and edits it in place on later passes. It carries
``MARKER`` as its first line, so it is found again after an unknown outcome.

What it says: type, priority and severity, each with its confidence (and its reason when
triage gives one); likely duplicates in the same repository, linked, open ones first, with
their similarity; missing information as questions to the author; the suggested owner with
the routing rule that chose them; the rest folded in ``<details>``. A security-sensitive
issue on a public repository gets only a short notice pointing to private reporting.
Reporter text shown (duplicate titles) is neutralised like a filed issue's.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Literal

from ai_pipeline.domain.github import InPlaceDraft, IssueRef, Origin, github_metadata, origin_of
from ai_pipeline.domain.github_labels import NEEDS_TRIAGE, LabelDecision
from ai_pipeline.domain.models import BugReport, DuplicateCandidate, SecurityBand, TriageResult
from ai_pipeline.drafting.template import prose
from ai_pipeline.triage.rules import request_for

MARKER = "<!-- ai-pipeline:triage -->"
LIKELY_MARGIN = 0.1  # candidates this close to the likely duplicate are shown beside it
MAX_LIKELY = 3
IssueState = Callable[[IssueRef], Awaitable[str | None]]  # "open", "closed" or unknown


def is_ours(body: str) -> bool:
    """Our comment starts with the marker (a person quoting it starts with "> ")."""
    return body.lstrip().startswith(MARKER)


class GitHubCommentDrafter:
    def __init__(self, state_of: IssueState | None = None, filing_repository: str | None = None):
        """``state_of``: an issue's state as last seen (to list open duplicates first);
        ``filing_repository``: where reports sent to the API are filed, if on GitHub."""
        self._state_of = state_of
        self._filing_repository = filing_repository

    async def draft(self, origin: Origin, report: BugReport, triage: TriageResult) -> InPlaceDraft:
        """``report`` and ``triage`` are the redacted copies: everything may be shown."""
        github = github_metadata(report.metadata)
        base = InPlaceDraft(
            repository=origin.issue.repository,
            issue_number=origin.issue.number,
            version=origin.version,
            labels=[],
        )
        owner = triage.assignee_suggestion
        # Only the private band: a doubt (the review band) on an issue already public says
        # so in the details, and hides nothing the author did not publish themselves.
        if triage.security_band is SecurityBand.PRIVATE and github.get("private") is not True:
            who = (owner.team or owner.assignee) if owner else None
            return base.model_copy(
                update={
                    "assignee": owner.assignee if owner else None,
                    "mention": who,
                    "substance": True,
                    "security_notice": True,
                    "body": _security_notice(github, who),
                }
            )
        questions = [request_for(field) for field in triage.missing_information]
        likely, others = await self._duplicates(origin, triage)
        sections = [
            _fields(triage),
            _likely(likely),
            _questions(questions, github.get("trigger") == "answered"),
            _owner(triage),
            _details(triage, others, origin),
        ]
        return base.model_copy(
            update={
                "labels": list(dict.fromkeys(triage.labels)),
                "assignee": owner.assignee if owner else None,
                "questions": questions,
                "substance": bool(questions or likely),
                "body": "\n\n".join(s for s in sections if s),
                "waiting": "info"
                if questions
                else "triage"
                if NEEDS_TRIAGE in triage.labels
                else None,
            }
        )

    async def _duplicates(
        self, origin: Origin, triage: TriageResult
    ) -> tuple[list[tuple[int, DuplicateCandidate, str | None]], list[tuple[int, float]]]:
        """Likely duplicates (number, candidate, state), open first; and the other similar
        issues (number, similarity). Only issues of the same repository: a link to another
        one could disclose a private repository's issue."""
        located: list[tuple[int, DuplicateCandidate]] = []
        for candidate in triage.duplicate_candidates:
            where = self._location(candidate)
            if (
                where is not None
                and where.repository.lower() == origin.issue.repository.lower()
                and where.number != origin.issue.number
                and where.number not in {n for n, _ in located}
            ):
                located.append((where.number, candidate))
        best = triage.duplicate_of
        floor = best.similarity - LIKELY_MARGIN if best is not None else 2.0
        likely = [(n, c) for n, c in located if c.similarity >= floor][:MAX_LIKELY]
        states = {n: await self._state(origin.issue.repository, n) for n, _ in likely}
        ordered = sorted(
            likely, key=lambda pair: (states[pair[0]] == "closed", -pair[1].similarity)
        )
        shown = {n for n, _ in likely}
        others = [(n, c.similarity) for n, c in located if n not in shown]
        return [(n, c, states[n]) for n, c in ordered], others

    def _location(self, candidate: DuplicateCandidate) -> IssueRef | None:
        origin = origin_of(candidate.bug_report_id)
        if origin is not None:
            return origin.issue
        if candidate.issue_number is not None and self._filing_repository:
            return IssueRef(self._filing_repository, candidate.issue_number)
        return None  # on the local tracker: nothing to link on GitHub

    async def _state(self, repository: str, number: int) -> str | None:
        return (
            None if self._state_of is None else await self._state_of(IssueRef(repository, number))
        )


def render_comment(
    draft: InPlaceDraft, decision: LabelDecision, mode: Literal["suggest", "apply"]
) -> str:
    """The comment as posted: marker, labels line, the drafted body, a footer."""
    lines = [MARKER]
    if draft.security_notice:
        return "\n".join([*lines, draft.body, ""])
    if decision.add:
        lines.append(f"**Labels applied:** {_codes(decision.add)}")
    if decision.suggest:
        lines.append(f"**Suggested labels:** {_codes(decision.suggest)}")
    if decision.held_back:
        lines.append(
            f"<sub>Not added, as a person already decided: {_codes(decision.held_back)}</sub>"
        )
    footer = (
        "<sub>Triaged by AI Pipeline"
        + (
            " in suggest mode: nothing is applied until a maintainer does."
            if mode == "suggest"
            else ". A person's labels are never removed or contradicted."
        )
        + " This comment is updated in place.</sub>"
    )
    return "\n".join([*lines, "", draft.body, "", footer, ""])


def is_quiet(draft: InPlaceDraft, decision: LabelDecision) -> bool:
    """Nothing useful to say: no duplicate, nothing missing, every label already set."""
    return not (draft.substance or decision.add or decision.suggest)


# --- sections ---------------------------------------------------------------------------


def _security_notice(github: Mapping[str, Any], owner: str | None) -> str:
    repository_url = str(github.get("repository_url") or "")
    policy = f"{repository_url}/security/policy" if repository_url else "its security policy"
    text = (
        "This issue may concern a security vulnerability. To keep users safe, please do not"
        " add details here: report it privately through the repository's security policy"
        f" ({policy}), which offers private vulnerability reporting or explains how to"
        " reach the maintainers (SECURITY.md)."
    )
    if owner:
        text += f"\n\ncc @{owner}"  # the routing's security owner: meant to be notified
    return text


def _value(triage: TriageResult, name: str) -> str | None:
    # Priority and severity are null where nothing in the report supports them.
    value = {"type": triage.type, "priority": triage.priority, "severity": triage.severity}[name]
    return value.value if value is not None else None


def _percent(value: float | None) -> str:
    return "–" if value is None else f"{value:.0%}"


def _fields(triage: TriageResult) -> str:
    """Type, priority and severity with their confidence; a field below its threshold (a
    suggestion, no label) is shown as unsure; the reasons column only when triage gave
    reasons."""
    reasons = triage.reasons
    rows = []
    for name in ("type", "priority", "severity"):
        value = _value(triage, name)
        shown = (value or "not set") + (
            "" if value is None or triage.decided(name) else " _(unsure: left to a maintainer)_"
        )
        row = f"| {name.title()} | {shown} | {_percent(triage.confidence.get(name))} |"
        if reasons:
            reason = reasons.get(name)
            row += f" {prose(reason, 300) if reason else ''} |"
        rows.append(row)
    header = ["| | | Confidence |", "|---|---|---|"]
    if reasons:
        header = ["| | | Confidence | Why |", "|---|---|---|---|"]
    return "\n".join([*header, *rows])


def _likely(likely: list[tuple[int, DuplicateCandidate, str | None]]) -> str:
    if not likely:
        return ""
    lines = ["**Likely duplicates:**"]
    for number, candidate, state in likely:
        title = f" {prose(candidate.title, 200)}" if candidate.title else ""
        shown_state = f"{state}, " if state else ""
        lines.append(f"- #{number}{title} ({shown_state}similarity {candidate.similarity:.2f})")
    return "\n".join(lines)


def _questions(questions: list[str], answered: bool) -> str:
    if not questions:
        return "All the information asked for earlier is here now: thank you." if answered else ""
    asks = "\n".join(f"- {prose(q)}" for q in questions)
    return (
        "**To act on this, we need a little more from the author**"
        f" (answering in a comment here is enough):\n{asks}"
    )


def _owner(triage: TriageResult) -> str:
    suggestion = triage.assignee_suggestion
    if suggestion is None:
        return ""
    who = suggestion.team or suggestion.assignee
    # As code, not a mention: a suggestion must not ping anyone.
    shown = f"`@{who}`" if who else "no one"
    return f"**Suggested owner:** {shown}: {prose(suggestion.reason, 300)}"


def _details(triage: TriageResult, others: list[tuple[int, float]], origin: Origin) -> str:
    confidence = triage.confidence
    lines = [
        f"- Area: {prose(triage.category, 100)} ({_percent(confidence.get('category'))})",
        "- Security-sensitive: "
        + ("yes" if triage.security_sensitive else "no")
        + f" (band: {triage.security_band.value})",
    ]
    if others:
        similar = ", ".join(f"#{n} ({s:.2f})" for n, s in others)
        lines.append(f"- Other similar issues: {similar}")
    lines.append(
        f"- Triage engine: {prose(triage.engine, 100)}; pass {origin.version} of this issue"
    )
    return "<details><summary>Details</summary>\n\n" + "\n".join(lines) + "\n\n</details>"


def _codes(labels: list[str]) -> str:
    return ", ".join(f"`{label.replace('`', '')}`" for label in labels)
