"""Priority and severity from what a report says outright, not from a guess.

Models fitted on another project's priorities barely beat always answering its most common
value (Hadoop: accuracy 0.68 against 0.69), and a value shown with 38 % confidence is noise.
Until a team trains on its own labels (``ai-pipeline train --from``), priority and severity
are set only by an explicit signal, each with its reason:

============================ ============ ============
signal                       priority     severity
============================ ============ ============
an outage phrase             critical     blocker
data loss or corruption      high         major
a regression                 high         –
a crash                      –            major
an urgent security report    high         major
a typo or cosmetic problem   low          minor
stated in the report         as stated    as stated
============================ ============ ============

The review band is a doubt, not a signal; and a published CVE id (an upgrade "because of
CVE-…", 4 % of Hadoop's reports, filed Major there) files privately but is not urgent by
itself: a payload, a leaked credential or a score in the private band is.

A value the reporter states ("Severity: minor", "Priority: P1") wins over one inferred from
the text; among inferred ones, the most urgent wins. Nothing found: the field stays empty.
Signals are looked for in the title and the opening of the description, where a report says
what it is about: further down, logs and asides mention crashes and regressions in passing
(on Hadoop, "crash" anywhere in the text agrees with the maintainers' level 5 times in 15,
in the title or opening 4 times in 9).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ai_pipeline.domain.models import Priority, Severity
from ai_pipeline.text.patterns import Pattern, linear

OPENING = 300  # characters of the description read for inferred signals
_PRIORITY_ORDER = tuple(Priority)  # low → critical
_SEVERITY_ORDER = tuple(Severity)  # minor → blocker


def _words(*patterns: str) -> Pattern:
    # Matched against lower-cased report text: RE2, linear whatever the text.
    return linear(r"\b(?:" + "|".join(patterns) + r")\b")


@dataclass(frozen=True)
class Signal:
    name: str
    pattern: Pattern
    priority: Priority | None
    severity: Severity | None
    title_only: bool = False  # a word that means this only when the title says it


SIGNALS = (
    Signal(
        "an outage phrase",
        _words(
            r"outage",
            r"(?:site|service|server|cluster|production|prod|website|app) (?:is |went |goes )?down",
            r"down for (?:all|every\w*)",
            r"(?:nobody|no one|no user|none of (?:our|the) users) can",
            r"all users (?:are |were )?(?:affected|blocked|unable)",
            r"service unavailable",
            r"completely (?:broken|unusable|down)",
        ),
        Priority.CRITICAL,
        Severity.BLOCKER,
    ),
    Signal(
        "data loss",
        _words(
            r"data ?loss",
            r"(?:lose|loses|losing|lost) (?:all )?(?:my |our |the |their |user )?"
            r"(?:data|work|files?|changes|emails?|messages|bookmarks)",
            r"(?:data|files?|database|index|bookmarks|profile) "
            r"(?:is |was |are |were |gets |got )?(?:lost|deleted|wiped|corrupt\w*)",
            r"data corruption",
            r"corrupt(?:s|ed|ing)? (?:the |my |our )?(?:data|files?|database|index|profile)",
        ),
        Priority.HIGH,
        Severity.MAJOR,
    ),
    Signal(
        "a regression",
        _words(
            r"regression",
            r"used to work",
            r"worked (?:fine |well )?(?:before|in (?:version |v)?\d[\w.]*|until)",
            r"no longer works?",
            r"stopped working (?:after|since|in)",
            r"broke(?:n)? (?:after|since|by|in) (?:the )?(?:upgrad\w*|updat\w*|version|v?\d)",
        ),
        Priority.HIGH,
        None,
    ),
    Signal(
        "a crash",
        _words(
            r"crash(?:es|ed|ing)?",
            r"segfaults?",
            r"segmentation fault",
            r"core dumped",
            r"sigsegv",
            r"sigabrt",
            r"panic(?:ked|s)?:?",
        ),
        None,
        Severity.MAJOR,
    ),
    Signal(
        "a typo or cosmetic problem",
        _words(r"typos?", r"misspel\w*", r"spelling", r"cosmetic", r"grammar"),
        Priority.LOW,
        Severity.MINOR,
        title_only=True,
    ),
)

# "Severity: critical", "Priority - P1", "**Severity**: S2" at the start of a line.
# Bugzilla's and Jira's words are mapped as the export format maps them.
_STATED = linear(
    r"(?im)^[ \t>*_#\-]*(?P<field>priority|severity|impact|urgency)[*_ \t]*[:=\-][ \t*_]*"
    r"(?P<value>[a-z0-9]+)",
)
_STATED_PRIORITY = {
    **dict.fromkeys(("low", "lowest", "trivial", "minor", "p3", "p4", "p5"), Priority.LOW),
    **dict.fromkeys(("medium", "normal", "moderate", "major", "p2"), Priority.MEDIUM),
    **dict.fromkeys(("high", "highest", "important", "p1"), Priority.HIGH),
    **dict.fromkeys(("critical", "blocker", "urgent", "p0", "emergency"), Priority.CRITICAL),
}
_STATED_SEVERITY = {
    **dict.fromkeys(("minor", "trivial", "low", "cosmetic", "s4"), Severity.MINOR),
    **dict.fromkeys(("moderate", "normal", "medium", "s3"), Severity.MODERATE),
    **dict.fromkeys(("major", "high", "critical", "s2"), Severity.MAJOR),
    **dict.fromkeys(("blocker", "showstopper", "s1", "s0"), Severity.BLOCKER),
}


@dataclass(frozen=True)
class ExplicitLevels:
    """What the report's own words support; None where nothing does."""

    priority: Priority | None = None
    severity: Severity | None = None
    reasons: dict[str, str] = field(default_factory=dict)


def explicit_levels(title: str, text: str, security_urgent: bool = False) -> ExplicitLevels:
    """Priority and severity from explicit signals in ``title`` and ``text`` (the full
    report text, title first) and ``security_urgent`` (the private security band, unless
    only a published CVE id put it there), each with its reason."""
    stated = _stated(text)
    priority = stated["priority"][0] if "priority" in stated else None
    severity = stated["severity"][0] if "severity" in stated else None
    reasons = {
        name: f"the report states '{said}' → {value}" for name, (value, said) in stated.items()
    }
    opening = text[: len(title) + 1 + OPENING]
    found = _inferred(title.lower(), opening.lower(), security_urgent)
    if priority is None and found.priority is not None:
        priority, reasons["priority"] = found.priority, found.reasons["priority"]
    if severity is None and found.severity is not None:
        severity, reasons["severity"] = found.severity, found.reasons["severity"]
    return ExplicitLevels(
        Priority(priority) if priority else None,
        Severity(severity) if severity else None,
        reasons,
    )


def _stated(text: str) -> dict[str, tuple[str, str]]:
    """Levels the report states in a "field: value" line, with the words it used; the
    first statement of each field wins."""
    stated: dict[str, tuple[str, str]] = {}
    for match in _STATED.finditer(text):
        word, value = match.group("field").lower(), match.group("value").lower()
        for name, table in (("priority", _STATED_PRIORITY), ("severity", _STATED_SEVERITY)):
            aliases = ("priority", "urgency") if name == "priority" else ("severity", "impact")
            if word in aliases and value in table and name not in stated:
                stated[name] = (table[value].value, f"{word}: {value}")
    return stated


def _inferred(title: str, text: str, security_urgent: bool) -> ExplicitLevels:
    priority: Priority | None = None
    severity: Severity | None = None
    reasons: dict[str, str] = {}
    candidates: list[tuple[str, Priority | None, Severity | None]] = []
    for signal in SIGNALS:
        match = signal.pattern.search(title if signal.title_only else text)
        if match is not None:
            candidates.append((f"'{match.group(0).strip()}' ({signal.name})", *_levels(signal)))
    if security_urgent:
        candidates.append(("the private security band", Priority.HIGH, Severity.MAJOR))
    for why, p, s in candidates:
        if p is not None and (priority is None or _rank(p) > _rank(priority)):
            priority, reasons["priority"] = p, f"{why} → {p.value}"
        if s is not None and (severity is None or _rank(s) > _rank(severity)):
            severity, reasons["severity"] = s, f"{why} → {s.value}"
    return ExplicitLevels(priority, severity, reasons)


def _levels(signal: Signal) -> tuple[Priority | None, Severity | None]:
    return signal.priority, signal.severity


def _rank(level: Priority | Severity) -> int:
    if isinstance(level, Priority):
        return _PRIORITY_ORDER.index(level)
    return _SEVERITY_ORDER.index(level)
