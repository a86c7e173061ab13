"""Turn a triaged report into an issue title and Markdown body.

Everything the reporter wrote is data, shown to a reader but never acted on by the tracker:

- mentions are neutralised (a zero-width space after ``@``), so filing never pings anyone;
- HTML is escaped outside code, so ``<script>``, ``<img onerror>``, ``<http://…>`` autolinks
  and HTML comments show as text;
- every URL (``scheme://…``, ``www.…``) becomes an inline code span: readable and
  copyable, but neither a link nor an image the reader's browser fetches (no tracking
  pixel, no ``javascript:`` click, no phishing link rendered as ours);
- protocol-relative (``//host/…``) and scheme-only links (``https:host``, ``javascript:…``)
  are URLs too, and become code like the others;
- Markdown link, image, heading, table and fence syntax is escaped (``\\[``, ``\\]``,
  ``\\#``, ``\\|``, a backslash before a line-leading ````` ``` ````` or ``~~~``), and so
  is every backslash the reporter typed (``\\[`` typed would otherwise become ``\\\\[``,
  an escaped backslash before a live bracket), so ``[click](javascript:…)``, ``![x](…)``, a
  fake "## Triage" table and a fence that would swallow our sections render as the
  characters typed, not as structure;
- code fences are made longer than any backtick run inside them, so reporter text cannot
  close our fence (inside a fence nothing renders);
- text imitating our hidden marker gets a zero-width space, so the only marker an issue
  carries is ours.

Plain prose stays plain: escaping only adds backslashes the renderer hides.

Escaping lengthens text (``&`` becomes ``&amp;``, five times longer), so the section budgets
cannot keep a body inside GitHub's 65,536 characters by themselves: ``render`` measures the
rendered body and, when it is too long, cuts the longest reporter sections until it fits,
each with a note (the full report stays in the service's store).
"""

from __future__ import annotations

import html
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from ai_pipeline.domain.models import (
    BugReport,
    DuplicateCandidate,
    IssueDraft,
    SecurityBand,
    TriageResult,
)
from ai_pipeline.drafting.marker import marker
from ai_pipeline.text.patterns import linear
from ai_pipeline.triage.rules import request_for

MAX_TITLE = 256
# GitHub refuses issue and comment bodies over this many characters (a 422).
GITHUB_BODY_LIMIT = 65_536
# Room kept for what the tracker agent puts above an occurrence comment.
OCCURRENCE_HEADER_ROOM = 100
# How much of each reporter field a body shows before any fitting (source characters).
BUDGETS = {"summary": 24_000, "steps": 8_000, "expected": 4_000, "actual": 12_000, "env": 4_000}
# The patterns below run on stdlib re, which is faster per match than RE2's binding; the
# ReDoS checker proves each linear (tests/unit/test_linear_patterns.py). _URL is RE2: on
# re it backtracks quadratically.
_MENTION = re.compile(r"(?<![\w`])@(?=[A-Za-z0-9])")
_BACKTICKS = re.compile(r"`+")
# A URL, without the punctuation that usually ends the sentence around it: scheme://…,
# www.…, a scheme GitHub or a browser follows without slashes (group 1), or a
# protocol-relative //host/… (group 2, after a character that is not part of a path).
_URL = linear(
    r"(?i)(?:(\b[a-z][a-z0-9+.\-]*://|\bwww\.|\b(?:https?|s?ftp|javascript|vbscript|data"
    r"|file|mailto|blob|wss?):)|(?:^|[^A-Za-z0-9_:/])(//))[^\s<>`\"']*[^\s<>`\"'.,;:!?)\]]"
)
# Characters that make links, images and tables, and the backslash that would escape our
# own escaping: each gets a backslash.
_LINK_SYNTAX = str.maketrans({c: "\\" + c for c in "\\[]|"})
# Line starts that make structure: a heading, or a code fence that would swallow the rest
# of the body (our sections included) into one code block.
_BLOCK_START = re.compile(r"(?m)^(\s{0,3})(#|`{3,}|~{3,})")
_FAKE_MARKER = re.compile(r"(?i)ai-pipeline:request=")
_NO_VALUE = "_not provided_"
_CUT_NOTE = "\n… (truncated here; the full text is kept in the service)"


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
        start = url.start(1) if url.start(1) >= 0 else url.start(2)
        parts += [_escape(text[position:start]), code_span(text[start : url.end()])]
        position = url.end()
    parts.append(_escape(text[position:]))
    return neutralise_markers("".join(parts))


def _escape(text: str) -> str:
    escaped = html.escape(text, quote=False).translate(_LINK_SYNTAX)
    return neutralise_mentions(_BLOCK_START.sub(r"\1\\\2", escaped))


def clip(text: str, budget: int) -> str:
    if len(text) <= budget:
        return text
    return text[:budget] + _CUT_NOTE


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


def render(
    request_id: str, report: BugReport, triage: TriageResult, room: int = GITHUB_BODY_LIMIT
) -> IssueDraft:
    """The issue: title, labels and a body of at most ``room`` characters."""
    sections: list[tuple[str, Section]] = [
        ("Summary", _prose_part(report.description, BUDGETS["summary"])),
        ("Environment", _environment(report)),
        ("Steps to reproduce", _steps(report)),
        ("Expected behaviour", _prose_part(report.expected_behavior or "", BUDGETS["expected"])),
        ("Actual behaviour", _actual(report)),
        ("Triage", _triage_table(triage)),
        ("Possible duplicates", _duplicates(triage)),
        ("Missing information", _missing(triage)),
        ("Attachments", _attachments(report)),
    ]
    footer = (
        f"\n\n---\n<sub>Filed by AI Pipeline from report `{report.id}` (request"
        f" `{request_id}`). The reporter's contact details are kept in the service, not"
        f" published.</sub>\n{marker(request_id)}\n"
    )
    body = _fit(sections, lambda contents: _join("##", contents) + footer, room)
    return IssueDraft(
        title=title_for(report),
        body=body,
        labels=list(dict.fromkeys(triage.labels)),
    )


def render_occurrence(
    request_id: str,
    report: BugReport,
    triage: TriageResult,
    room: int = GITHUB_BODY_LIMIT - OCCURRENCE_HEADER_ROOM,
) -> str:
    """A later report of an open issue as a comment on it: what differs from one report to
    the next (environment, steps, what happened), for the "comment" duplicate mode."""
    duplicate = triage.duplicate_of
    similarity = f" (similarity {duplicate.similarity:.2f})" if duplicate else ""
    sections: list[tuple[str, Section]] = [
        ("Title", prose(report.title, MAX_TITLE)),
        ("Environment", _environment(report)),
        ("Steps to reproduce", _steps(report)),
        ("Actual behaviour", _actual(report)),
    ]
    footer = (
        f"\n\n<sub>Report `{report.id}` (request `{request_id}`), matched to this"
        f" issue by AI Pipeline{similarity}. Wrong match? Say so here: the report is kept"
        f" in the service.</sub>\n{marker(request_id)}\n"
    )
    return _fit(sections, lambda contents: _join("####", contents) + footer, room)


def occurrence_comment(occurrence: str, reports: int) -> str:
    """The comment as posted: how many reports this issue has had, then the occurrence
    (which leaves ``OCCURRENCE_HEADER_ROOM`` characters for this line)."""
    return f"### Reported again: {reports} reports of this issue so far\n\n{occurrence}"


# --------------------------------------------------------------------- fitting the body


@dataclass(frozen=True)
class Cuttable:
    """A section that can be shortened: ``render(n)`` shows the first ``n`` units of what
    the reporter wrote (characters, or attachments), with a note when ``n < full``."""

    render: Callable[[int], str]
    full: int


Section = str | Cuttable
_SEARCH_STEPS = 12


def _join(heading: str, contents: Sequence[tuple[str, str]]) -> str:
    return "\n\n".join(f"{heading} {name}\n{content or _NO_VALUE}" for name, content in contents)


def _fit(
    sections: list[tuple[str, Section]],
    assemble: Callable[[list[tuple[str, str]]], str],
    room: int,
) -> str:
    """The assembled text, at most ``room`` characters: when the sections as budgeted are
    too long once escaped, the longest cuttable ones are cut to one common length (no
    shorter section is touched), each rendered anew from a shorter part of its source."""
    contents = [
        (name, part.render(part.full) if isinstance(part, Cuttable) else part)
        for name, part in sections
    ]
    text = assemble(contents)
    if len(text) <= room:
        return text
    cuttable = [i for i, (_, part) in enumerate(sections) if isinstance(part, Cuttable)]
    lengths = [len(contents[i][1]) for i in cuttable]
    cap = _common_cap(lengths, sum(lengths) - (len(text) - room))
    for i in cuttable:
        name, part = sections[i]
        if len(contents[i][1]) > cap and isinstance(part, Cuttable):
            contents[i] = (name, _longest_within(part, cap, len(contents[i][1])))
    return assemble(contents)


def _common_cap(lengths: list[int], total: int) -> int:
    """The largest ``cap`` with ``sum(min(length, cap)) <= total`` (0 when none is)."""
    low, high = 0, max(lengths, default=0)
    while low < high:
        middle = (low + high + 1) // 2
        if sum(min(length, middle) for length in lengths) <= total:
            low = middle
        else:
            high = middle - 1
    return low


def _longest_within(part: Cuttable, room: int, full_length: int) -> str:
    """The rendering of the most units that fits ``room`` (found in a few renderings: the
    rendered length grows about linearly with the units shown). When even none fits,
    ``render(0)``, the note alone, is cut to ``room``: a safety net the budgets of the
    sections that are not cuttable keep out of reach."""
    best = part.render(0)
    if len(best) > room:
        return best[:room]
    low, low_len, high, high_len = 0, len(best), part.full, full_length
    for _ in range(_SEARCH_STEPS):
        if high - low <= 1:
            break
        # Interpolate, but keep inside the bracket so that each step narrows it.
        guess = low + (high - low) * (room - low_len) // max(high_len - low_len, 1)
        n = min(max(guess, low + 1), high - 1)
        rendered = part.render(n)
        if len(rendered) <= room:
            low, low_len, best = n, len(rendered), rendered
        else:
            high, high_len = n, len(rendered)
    return best


def _prose_part(text: str, budget: int) -> Cuttable:
    text = text.strip()
    return Cuttable(lambda n: prose(text, n), min(len(text), budget))


def _steps(report: BugReport) -> Section:
    return _prose_part(report.steps_text(), BUDGETS["steps"]) if report.steps_to_reproduce else ""


def _environment(report: BugReport) -> Section:
    text = report.environment_text()
    if not text:
        return ""
    return Cuttable(lambda n: code_block(clip(text, n)), min(len(text), BUDGETS["env"]))


def _actual(report: BugReport) -> Section:
    text = report.actual_behavior or ""
    if not text:
        return ""

    def render(n: int) -> str:
        shown = clip(text, n)
        # Error text and stack traces keep their exact shape inside a code block.
        return code_block(shown) if "\n" in shown.strip() else prose(shown, n)

    return Cuttable(render, min(len(text), BUDGETS["actual"]))


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


def _attachments(report: BugReport) -> Section:
    # Links are shown as code, not made clickable: they point at hosts we do not vouch for.
    lines = [
        f"- {prose(a.name)}" + (f": {code_span(a.url)}" if a.url else "")
        for a in report.attachments
    ]

    def render(n: int) -> str:
        more = len(lines) - n
        note = [f"- … and {more} more, kept in the service"] if more > 0 else []
        return "\n".join(lines[:n] + note)

    return Cuttable(render, len(lines)) if lines else ""
