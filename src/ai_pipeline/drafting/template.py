"""Turn a triaged report into an issue title and Markdown body.

Everything the reporter wrote is data: mentions are neutralised so filing never pings
anyone, HTML is escaped outside code, and code fences are made longer than any backtick
run inside them so reporter text cannot close our fence.
"""

from __future__ import annotations

import html
import re

from ai_pipeline.domain.models import BugReport, IssueDraft, TriageResult
from ai_pipeline.drafting.marker import marker
from ai_pipeline.triage.rules import request_for

MAX_TITLE = 256
# GitHub refuses bodies over 65,536 characters; these budgets keep ours well inside it.
BUDGETS = {"summary": 24_000, "steps": 8_000, "expected": 4_000, "actual": 12_000, "env": 4_000}
_MENTION = re.compile(r"(?<![\w`])@(?=[A-Za-z0-9][A-Za-z0-9-]*)")
_BACKTICKS = re.compile(r"`+")
_NO_VALUE = "_not provided_"
UNSURE_BELOW = 0.5


def neutralise_mentions(text: str) -> str:
    # A zero-width space after @ keeps the text readable but stops GitHub's mention lookup.
    return _MENTION.sub("@\u200b", text)


def clip(text: str, budget: int) -> str:
    if len(text) <= budget:
        return text
    return text[:budget] + "\n… (truncated here; the full text is kept in the service)"


def prose(text: str, budget: int = 2_000) -> str:
    return neutralise_mentions(html.escape(clip(text.strip(), budget), quote=False)) or _NO_VALUE


def code_block(text: str, language: str = "") -> str:
    runs = [len(run) for run in _BACKTICKS.findall(text)]
    fence = "`" * max(3, max(runs, default=0) + 1)
    return f"{fence}{language}\n{neutralise_mentions(text.rstrip())}\n{fence}"


def title_for(report: BugReport) -> str:
    return one_line_title(report.title)


def one_line_title(text: str) -> str:
    """A title as filed: one line, mentions neutralised, at most ``MAX_TITLE`` characters."""
    title = neutralise_mentions(" ".join(text.split()))
    return title if len(title) <= MAX_TITLE else title[: MAX_TITLE - 1] + "…"


def render(request_id: str, report: BugReport, triage: TriageResult) -> IssueDraft:
    sections = [
        ("Summary", prose(report.description, BUDGETS["summary"])),
        ("Environment", _environment(report)),
        (
            "Steps to reproduce",
            prose(report.steps_text(), BUDGETS["steps"]) if report.steps_to_reproduce else "",
        ),
        ("Expected behaviour", prose(report.expected_behavior or "", BUDGETS["expected"])),
        ("Actual behaviour", _actual(report)),
        ("Triage", _triage_table(triage)),
        ("Possible duplicates", _duplicates(triage)),
        ("Missing information", _missing(triage)),
        ("Attachments", _attachments(report)),
    ]
    body = "\n\n".join(f"## {name}\n{content or _NO_VALUE}" for name, content in sections)
    footer = (
        f"<sub>Filed by AI Pipeline from report `{report.id}` (request `{request_id}`)."
        " The reporter's contact details are kept in the service, not published.</sub>"
    )
    return IssueDraft(
        title=title_for(report),
        body=f"{body}\n\n---\n{footer}\n{marker(request_id)}\n",
        labels=list(dict.fromkeys(triage.labels)),
    )


def render_occurrence(request_id: str, report: BugReport, triage: TriageResult) -> str:
    """A later report of an open issue as a comment on it: what differs from one report to
    the next (environment, steps, what happened), for the "comment" duplicate mode."""
    duplicate = triage.duplicate_of
    similarity = f" (similarity {duplicate.similarity:.2f})" if duplicate else ""
    sections = [
        ("Title", prose(report.title, MAX_TITLE)),
        ("Environment", _environment(report)),
        (
            "Steps to reproduce",
            prose(report.steps_text(), BUDGETS["steps"]) if report.steps_to_reproduce else "",
        ),
        ("Actual behaviour", _actual(report)),
    ]
    body = "\n\n".join(f"#### {name}\n{content or _NO_VALUE}" for name, content in sections)
    return (
        f"{body}\n\n<sub>Report `{report.id}` (request `{request_id}`), matched to this"
        f" issue by AI Pipeline{similarity}. Wrong match? Say so here: the report is kept"
        f" in the service.</sub>\n{marker(request_id)}\n"
    )


def occurrence_comment(occurrence: str, reports: int) -> str:
    """The comment as posted: how many reports this issue has had, then the occurrence."""
    return f"### Reported again: {reports} reports of this issue so far\n\n{occurrence}"


def _environment(report: BugReport) -> str:
    text = clip(report.environment_text(), BUDGETS["env"])
    return code_block(text) if text else ""


def _actual(report: BugReport) -> str:
    text = clip(report.actual_behavior or "", BUDGETS["actual"])
    # Error text and stack traces keep their exact shape inside a code block.
    if "\n" in text.strip():
        return code_block(text)
    return prose(text, BUDGETS["actual"]) if text else ""


def _triage_table(triage: TriageResult) -> str:
    conf = triage.confidence
    rows = [
        ("Type", triage.type.value, conf.get("type")),
        ("Priority", triage.priority.value, conf.get("priority")),
        ("Severity", triage.severity.value, conf.get("severity")),
        ("Category", triage.category, conf.get("category")),
        ("Security-sensitive", "yes" if triage.security_sensitive else "no", conf.get("security")),
    ]
    lines = ["| Field | Value | Confidence |", "|---|---|---|"]
    lines += [f"| {f} | {_value(v, c)} | {_percent(c)} |" for f, v, c in rows]
    if triage.assignee_suggestion is not None:
        suggestion = triage.assignee_suggestion
        who = suggestion.team or suggestion.assignee or "-"
        lines.append(f"| Suggested owner | {prose(who)} ({prose(suggestion.reason)}) | |")
    lines.append(f"\n_Triage engine: {triage.engine}_")
    return "\n".join(lines)


def _value(value: str, confidence: float | None) -> str:
    unsure = confidence is not None and confidence < UNSURE_BELOW
    return html.escape(value) + (" _(unsure: a human should decide)_" if unsure else "")


def _percent(value: float | None) -> str:
    return "-" if value is None else f"{value:.0%}"


def _duplicates(triage: TriageResult) -> str:
    lines = []
    for candidate in triage.duplicate_candidates:
        where = (
            f"#{candidate.issue_number}"
            if candidate.issue_number
            else f"`{candidate.bug_report_id}`"
        )
        title = f" {prose(candidate.title)}" if candidate.title else ""
        via = (
            f", through its duplicate `{prose(candidate.via_bug_report_id)}`"
            if candidate.via_bug_report_id
            else ""
        )
        lines.append(f"- {where}{title} (similarity {candidate.similarity:.2f}{via})")
    if triage.duplicate_of is not None:
        lines.insert(
            0, "Likely a duplicate of the first one below; left open for a human to decide."
        )
    return "\n".join(lines) or "None found."


def _missing(triage: TriageResult) -> str:
    if not triage.missing_information:
        return "Nothing obvious."
    asks = "\n".join(f"- {prose(request_for(item))}" for item in triage.missing_information)
    return f"To act on this report we need a little more from the reporter:\n{asks}"


def _attachments(report: BugReport) -> str:
    # Links are shown as code, not made clickable: they point at hosts we do not vouch for.
    return "\n".join(
        f"- {prose(a.name)}" + (f": `{a.url.replace('`', '')}`" if a.url else "")
        for a in report.attachments
    )
