"""Turn a triaged report into an issue title and Markdown body.

Everything the reporter wrote is data, shown to a reader but never acted on by the tracker:

- mentions are neutralised (a zero-width space after ``@``), so filing never pings anyone;
- HTML is escaped outside code, so ``<script>``, ``<img onerror>``, ``<http://…>`` autolinks
  and HTML comments show as text;
- every URL (``scheme://…``, ``www.…``) becomes an inline code span: readable and
  copyable, but neither a link nor an image the reader's browser fetches (no tracking
  pixel, no ``javascript:`` click, no phishing link rendered as ours);
- Markdown link, image, heading, table and fence syntax is escaped (``\\[``, ``\\]``,
  ``\\#``, ``\\|``, a backslash before a line-leading ````` ``` ````` or ``~~~``), so
  ``[click](javascript:…)``, ``![x](…)``, a fake "## Triage" table and a fence that would
  swallow our sections render as the characters typed, not as structure;
- code fences are made longer than any backtick run inside them, so reporter text cannot
  close our fence (inside a fence nothing renders);
- text imitating our hidden marker gets a zero-width space, so the only marker an issue
  carries is ours.

Plain prose stays plain: escaping only adds backslashes the renderer hides.
"""

from __future__ import annotations

import html
import re

from ai_pipeline.domain.models import (
    BugReport,
    DuplicateCandidate,
    IssueDraft,
    SecurityBand,
    TriageResult,
)
from ai_pipeline.drafting.marker import marker
from ai_pipeline.triage.rules import request_for

MAX_TITLE = 256
# GitHub refuses bodies over 65,536 characters; these budgets keep ours well inside it.
BUDGETS = {"summary": 24_000, "steps": 8_000, "expected": 4_000, "actual": 12_000, "env": 4_000}
_MENTION = re.compile(r"(?<![\w`])@(?=[A-Za-z0-9][A-Za-z0-9-]*)")
_BACKTICKS = re.compile(r"`+")
# A URL, without the punctuation that usually ends the sentence around it.
_URL = re.compile(r"(?i)\b(?:[a-z][a-z0-9+.\-]*://|www\.)[^\s<>`\"']*[^\s<>`\"'.,;:!?)\]]")
_LINK_SYNTAX = re.compile(r"[\[\]|]")
# Line starts that make structure: a heading, or a code fence that would swallow the rest
# of the body (our sections included) into one code block.
_BLOCK_START = re.compile(r"(?m)^(\s{0,3})(#|`{3,}|~{3,})")
_FAKE_MARKER = re.compile(r"(?i)ai-pipeline:request=")
_NO_VALUE = "_not provided_"


def neutralise_mentions(text: str) -> str:
    # A zero-width space after @ keeps the text readable but stops GitHub's mention lookup.
    return _MENTION.sub("@\u200b", text)


def neutralise_markers(text: str) -> str:
    # Only our own marker may tie an issue to a request (see drafting.marker).
    return _FAKE_MARKER.sub("ai-pipeline:\u200brequest=", text)


def code_span(text: str) -> str:
    """Inline code on one line: a newline or backtick would let the rest render."""
    return "`" + " ".join(text.replace("`", "").split()) + "`"


def inert(text: str) -> str:
    """Reporter prose that renders as the characters typed: URLs as code, no live HTML,
    link or image syntax, headings, tables or mentions."""
    parts: list[str] = []
    position = 0
    for url in _URL.finditer(text):
        parts += [_escape(text[position : url.start()]), code_span(url.group(0))]
        position = url.end()
    parts.append(_escape(text[position:]))
    return neutralise_markers("".join(parts))


def _escape(text: str) -> str:
    escaped = html.escape(text, quote=False)
    escaped = _LINK_SYNTAX.sub(lambda m: "\\" + m.group(0), escaped)
    return neutralise_mentions(_BLOCK_START.sub(r"\1\\\2", escaped))


def clip(text: str, budget: int) -> str:
    if len(text) <= budget:
        return text
    return text[:budget] + "\n… (truncated here; the full text is kept in the service)"


def prose(text: str, budget: int = 2_000) -> str:
    return inert(clip(text.strip(), budget)) or _NO_VALUE


def code_block(text: str, language: str = "") -> str:
    runs = [len(run) for run in _BACKTICKS.findall(text)]
    fence = "`" * max(3, max(runs, default=0) + 1)
    body = neutralise_markers(neutralise_mentions(text.rstrip()))
    return f"{fence}{language}\n{body}\n{fence}"


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
    """One row per field: the value (or a suggestion, marked), its calibrated confidence and
    what it rests on. Reasons quote the report: they go through ``prose`` like its text."""
    conf, reasons = triage.confidence, triage.reasons
    level = {"priority": triage.priority, "severity": triage.severity}
    rows: list[tuple[str, str, str | None]] = [("Type", "type", triage.type.value)]
    rows += [(name.title(), name, value.value if value else None) for name, value in level.items()]
    rows += [
        ("Category", "category", triage.category),
        ("Security", "security", _BANDS[triage.security_band]),
    ]
    if triage.duplicate_candidates:
        best = triage.duplicate_of
        rows.append(("Duplicate", "duplicate", _issue_ref(best) if best else "no"))
    lines = ["| Field | Value | Confidence | Why |", "|---|---|---|---|"]
    for title, name, value in rows:
        shown = _value(value, triage.decided(name) or value is None)
        why = prose(reasons[name], 300) if name in reasons else ""
        confidence = _percent(conf.get(name)) if value is not None else "-"
        lines.append(f"| {title} | {shown} | {confidence} | {why} |")
    if triage.assignee_suggestion is not None:
        suggestion = triage.assignee_suggestion
        who = suggestion.team or suggestion.assignee or "-"
        lines.append(f"| Suggested owner | {prose(who)} | | {prose(suggestion.reason)} |")
    lines.append(
        f"\n_Triage engine: {triage.engine}. Confidences are calibrated: the share of such"
        " values that were right on held-out reports. A value marked as a suggestion stayed"
        " below its field's threshold and has no label._"
    )
    return "\n".join(lines)


_BANDS = {
    SecurityBand.PRIVATE: "private",
    SecurityBand.REVIEW: "security review",
    SecurityBand.PUBLIC: "public",
}


def _value(value: str | None, decided: bool) -> str:
    if value is None:
        return "–"  # nothing in the report supports one
    return html.escape(value) + ("" if decided else " _(suggestion: a human should decide)_")


def _percent(value: float | None) -> str:
    return "-" if value is None else f"{value:.0%}"


def _issue_ref(candidate: DuplicateCandidate) -> str:
    if candidate.issue_number:
        return f"#{candidate.issue_number}"
    return f"`{prose(candidate.bug_report_id)}`"


def _duplicates(triage: TriageResult) -> str:
    lines = []
    for candidate in triage.duplicate_candidates:
        where = _issue_ref(candidate)
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
    elif lines:
        lines.insert(0, "Similar earlier reports (suggestions: none was close enough to link):")
    return "\n".join(lines) or "None found."


def _missing(triage: TriageResult) -> str:
    if not triage.missing_information:
        return "Nothing obvious."
    asks = "\n".join(f"- {prose(request_for(item))}" for item in triage.missing_information)
    return f"To act on this report we need a little more from the reporter:\n{asks}"


def _attachments(report: BugReport) -> str:
    # Links are shown as code, not made clickable: they point at hosts we do not vouch for.
    return "\n".join(
        f"- {prose(a.name)}" + (f": {code_span(a.url)}" if a.url else "")
        for a in report.attachments
    )
