"""Hand-written triage rules: category, missing information, security keywords, labels.

Rules complement the learned models where there is no labelled data (category), where the
answer is structural (missing information), or where a miss is expensive (security: a
vulnerability filed as a public issue is disclosed).
"""

from __future__ import annotations

import itertools
import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass

from ai_pipeline.domain.labels import (
    DUPLICATE_LABEL,
    NEEDS_INFO_LABEL,
    NEEDS_TRIAGE_LABEL,
    SECURITY_LABEL,
    TYPE_LABELS,
)
from ai_pipeline.domain.models import BugReport, IssueType, Priority, Severity
from ai_pipeline.text.patterns import linear
from ai_pipeline.triage.features import MAX_CHARS, tokenize

# ------------------------------------------------------------------------------ category

OTHER = "other"
CATEGORIES = (
    "crash",
    "security",
    "authentication",
    "performance",
    "ui",
    "api",
    "network",
    "data",
    "build",
    "documentation",
    OTHER,
)
CATEGORY_CONFIDENCE_THRESHOLD = 0.5
_OTHER_CONFIDENCE = 0.5  # no keyword at all: "other" is a plausible, not a confident, answer
_MAX_RULE_CONFIDENCE = 0.95
_TITLE_WEIGHT = 2  # a keyword in the title says more than one in a long body


# Terms as the tokenizer emits them (lower case, split on punctuation); two-word terms match
# adjacent tokens. Matching tokens against sets is ~20x faster than running regexes per
# category, which matters at the 5 ms per report budget.
_CATEGORY_TERMS: dict[str, tuple[str, str]] = {  # category: (words, "phrase|phrase")
    "crash": (
        "crash crashes crashed crashing crashloop segfault segfaults sigsegv sigabrt "
        "panic panics panicked traceback stacktrace abort aborts aborted freeze freezes "
        "froze frozen hang hangs hung unresponsive exception exceptions",
        "segmentation fault|core dump|core dumped|stack trace|fatal error|not responding",
    ),
    "security": (
        "vulnerability vulnerabilities vulnerable exploit exploits exploitable xss csrf cve "
        "injection security malicious attacker",
        "",
    ),
    "authentication": (
        "login logins logout signin signup auth authentication authenticate authenticated "
        "authorization oauth oauth2 sso password passwords 2fa mfa credential credentials "
        "kerberos jwt",
        "log in|log out|sign in|sign up|session expired|access token|refresh token|bearer token",
    ),
    "performance": (
        "slow slower slowly slowness sluggish performance latency lag laggy lags oom "
        "throughput speed fps",
        "memory leak|memory usage|high cpu|cpu usage|out of memory|takes forever|too slow",
    ),
    "ui": (
        "ui ux button buttons layout css display displayed displays render rendering "
        "rendered font fonts theme screen menu menus dialog dialogs modal click clicking "
        "clicked scroll scrolling scrollbar tooltip icon icons sidebar",
        "dark mode",
    ),
    "api": (
        "api apis endpoint endpoints graphql sdk json webhook webhooks rpc grpc",
        "rest api|status code|request body|response body",
    ),
    "network": (
        "network networking timeout timeouts dns proxy socket sockets ssl tls offline "
        "websocket websockets firewall econnrefused",
        "connection refused|connection reset|connection lost|timed out",
    ),
    "data": (
        "database databases db sql corrupt corrupted corruption migration migrations storage "
        "disk cache backup postgres postgresql mysql sqlite mongodb redis hdfs",
        "data loss|data lost",
    ),
    "build": (
        "build builds building compile compiler compiling compilation linker cmake makefile "
        "gradle maven webpack bazel ci pipeline install installation installing installer "
        "dependency dependencies package packaging npm pip cargo",
        "link error",
    ),
    "documentation": (
        "doc docs documentation readme typo typos tutorial javadoc docstring wiki",
        "",
    ),
}
# Any token ending like this counts too: NullPointerException, IllegalStateException...
_SUFFIX_CATEGORIES = (("exception", "crash"),)


def _term_categories() -> dict[str, str]:
    index: dict[str, str] = {}
    for category, (words, phrases) in _CATEGORY_TERMS.items():
        for term in [*words.split(), *filter(None, phrases.split("|"))]:
            index[term] = category
    return index


_TERM_CATEGORY = _term_categories()
# First words of two-word terms: only pairs starting with one of these are looked up.
_PHRASE_STARTS = frozenset(term.split()[0] for term in _TERM_CATEGORY if " " in term)


@dataclass(frozen=True)
class CategoryGuess:
    category: str
    confidence: float


def category_hits(tokens: list[str]) -> Counter[str]:
    """Keyword hits per category among ``tokens`` (single tokens and adjacent pairs)."""
    hits: Counter[str] = Counter()
    for token in tokens:
        category = _TERM_CATEGORY.get(token) or _suffix_category(token)
        if category is not None:
            hits[category] += 1
    for first, second in itertools.pairwise(tokens):
        if first in _PHRASE_STARTS:
            category = _TERM_CATEGORY.get(f"{first} {second}")
            if category is not None:
                hits[category] += 1
    return hits


def category_terms(tokens: list[str], category: str, most: int = 3) -> list[str]:
    """Up to ``most`` distinct terms among ``tokens`` that count for ``category``, in order."""
    terms: dict[str, None] = {}
    for first, second in itertools.pairwise([*tokens, ""]):
        if first in _PHRASE_STARTS and _TERM_CATEGORY.get(f"{first} {second}") == category:
            terms[f"{first} {second}"] = None
        elif (_TERM_CATEGORY.get(first) or _suffix_category(first)) == category:
            terms[first] = None
        if len(terms) == most:
            break
    return list(terms)


def _suffix_category(token: str) -> str | None:
    for suffix, category in _SUFFIX_CATEGORIES:
        if token.endswith(suffix):
            return category
    return None


def guess_category(title: str, text: str, text_tokens: list[str] | None = None) -> CategoryGuess:
    """The category whose keywords weigh most (title counts double), with a margin confidence.

    confidence = best / (best + runner_up + 1): one lone hit gives 0.5, a clear lead more,
    a tie less than 0.5 (below the threshold, so the field is flagged for human triage).
    ``text_tokens`` saves re-tokenising when the caller already has ``tokenize(text)``.
    """
    scores = category_hits(text_tokens if text_tokens is not None else tokenize(text))
    for category, hits in category_hits(tokenize(title)).items():
        scores[category] += _TITLE_WEIGHT * hits
    ranked = sorted(scores.items(), key=lambda item: (-item[1], CATEGORIES.index(item[0])))
    if not ranked:
        return CategoryGuess(OTHER, _OTHER_CONFIDENCE)
    best, best_score = ranked[0]
    runner_up = ranked[1][1] if len(ranked) > 1 else 0
    confidence = min(_MAX_RULE_CONFIDENCE, best_score / (best_score + runner_up + 1))
    return CategoryGuess(best, round(confidence, 4))


# -------------------------------------------------------------------- missing information

STEPS = "steps_to_reproduce"
EXPECTED = "expected_behavior"
ACTUAL = "actual_behavior"
ENVIRONMENT = "environment"
REPORT_FIELDS = (STEPS, EXPECTED, ACTUAL, ENVIRONMENT)

# Section headings as reporters and issue templates write them ("## Steps to reproduce",
# "**Expected result:**", "Actual:"), at the start of a line.
_HEADING_PREFIX = r"^[ \t>#*_\-]*"
_SECTION_HEADINGS: dict[str, str] = {
    STEPS: r"(?:steps? to reproduce|repro(?:duction)? steps|steps|str|how to reproduce|"
    r"to reproduce|reproduction|(?:standalone )?code to reproduce(?: the issue)?)",
    EXPECTED: r"(?:expected(?: (?:results?|behaviou?r|outcome|output))?|what (?:you |i )?"
    r"expected(?: to happen)?)",
    ACTUAL: r"(?:actual(?: (?:results?|behaviou?r|outcome|output))?|observed(?: behaviou?r)?|"
    r"current behaviou?r|what (?:actually )?happen(?:s|ed))",
    ENVIRONMENT: r"(?:environment|env|system info(?:rmation)?|(?:[\w.\-]+ )?versions?|"
    r"(?:os|operating system)(?: platform)?(?: and distribution)?|platform|browser|"
    r"user agent|build id)",
}
# RE2: on Python's re the prefix and "[\w.\-]+ versions?" backtrack quadratically on a
# line of dashes.
_HEADING = linear(
    r"(?im)"
    + _HEADING_PREFIX
    + r"(?P<name>"
    + "|".join(f"(?P<{field}>{pattern})" for field, pattern in _SECTION_HEADINGS.items())
    + r")\b[ \t*_?]*(?::|$)"
)
# Placeholders issue forms leave in unanswered sections, once the punctuation around them
# is set aside ("_No response_", "N/A.", "- none -"); an answer of punctuation alone is
# empty too.
_PLACEHOLDERS = frozenset(
    {"no response", "_no response", "no response_", "_no response_"}
    | {"na", "n/a", "none", "tbd", "todo"}
)
_WORD_CHARACTER = re.compile(r"\w")
# An environment is often stated inline rather than under a heading.
_INLINE_ENVIRONMENT = re.compile(
    r"\b(?:windows (?:\d+|xp|vista|server)|win(?:10|11)|mac ?os(?: x)?|osx|ubuntu|debian|"
    r"fedora|centos|red ?hat|linux|android \d+|ios \d+|chrome \d+|firefox \d+|safari \d+|"
    r"edge \d+|python \d|node(?:\.js)? v?\d+|java \d+|jdk ?\d+|version \d+(?:\.\d+)+)\b",
    re.IGNORECASE,
)
# RE2: "^\s*" in MULTILINE mode spans newlines, quadratic on re over blank lines.
_NUMBERED_STEP = linear(r"(?im)^\s*(?:1[.)]|step 1\b)")
_SECOND_STEP = linear(r"(?im)^\s*(?:2[.)]|step 2\b)")


def is_empty_answer(text: str) -> bool:
    """Whether ``text`` says nothing: blank, punctuation, or a placeholder among
    punctuation. Word characters are Unicode ones (an answer in any script counts)."""
    first = _WORD_CHARACTER.search(text)
    if first is None:
        return True
    last = _WORD_CHARACTER.search(text[::-1])
    end = len(text) - last.start() if last is not None else len(text)
    return text[first.start() : end].casefold() in _PLACEHOLDERS


def sections_in_text(text: str) -> set[str]:
    """Report fields that ``text`` answers under a heading with non-empty content."""
    found: set[str] = set()
    matches = list(_HEADING.finditer(text))
    ends = [m.start() for m in matches[1:]] + [len(text)] if matches else []
    for current, end in zip(matches, ends, strict=True):
        if not is_empty_answer(text[current.end() : end]):
            found.add(next(f for f in REPORT_FIELDS if current.group(f)))
    return found


def _field_is_filled(value: object) -> bool:
    """A structured field counts when it holds some non-blank text (lists/dicts: any item)."""
    if isinstance(value, str):
        return not is_empty_answer(value)
    if isinstance(value, dict):
        return any(_field_is_filled(item) for item in value.values())
    if isinstance(value, list):
        return any(_field_is_filled(item) for item in value)
    return value is not None


def present_fields(report: BugReport) -> set[str]:
    """Fields the report provides, either as structured fields or inside its description."""
    present = {name for name in REPORT_FIELDS if _field_is_filled(getattr(report, name))}
    description = report.description[:MAX_CHARS]  # bounded, like everything the engine reads
    present |= sections_in_text(description)
    if _NUMBERED_STEP.search(description) and _SECOND_STEP.search(description):
        present.add(STEPS)
    if _INLINE_ENVIRONMENT.search(description):
        present.add(ENVIRONMENT)
    return present


def required_fields(issue_type: IssueType) -> tuple[str, ...]:
    """What a report of this type must say. Feature requests and questions have no repro."""
    return REPORT_FIELDS if issue_type is IssueType.BUG else ()


# What to ask the reporter for each missing field: a question they can answer, not a name.
MISSING_REQUESTS: dict[str, str] = {
    STEPS: "What exact steps reproduce the problem? A numbered list from a fresh start helps most.",
    EXPECTED: "What did you expect to happen?",
    ACTUAL: "What happened instead? Please paste the exact error message or stack trace.",
    ENVIRONMENT: "Which version are you running, and on which operating system, browser or"
    " runtime?",
}


def request_for(field: str) -> str:
    """The question that asks the reporter for a missing ``field``."""
    return MISSING_REQUESTS.get(field, f"Could you add the {field.replace('_', ' ')}?")


def missing_information(report: BugReport, issue_type: IssueType = IssueType.BUG) -> list[str]:
    """Required fields absent from the report, in ``REPORT_FIELDS`` order."""
    present = present_fields(report)
    return [name for name in required_fields(issue_type) if name not in present]


# ------------------------------------------------------------------------------ security


def _words(*patterns: str) -> str:
    # Matched against lower-cased text: 3x faster than re.IGNORECASE on long reports.
    return r"\b(?:" + "|".join(patterns) + r")\b"


# Any of these names a vulnerability: the report goes to security review at least. Python's
# re with Unicode word boundaries, as the shipped model was fitted with; linear by the ReDoS
# checker's proof.
_STRONG_SECURITY = re.compile(
    _words(
        r"cve-\d{4}-\d{4,}",
        r"xss",
        r"cross[- ]site scripting",
        r"sql ?injection|sqli",
        r"csrf|xsrf",
        r"cross[- ]site request forgery",
        r"rce",
        r"remote code execution",
        r"arbitrary code execution",
        r"(?:command|code|ldap|xpath|template) injection",
        r"privilege escalation|escalat\w+ (?:of )?privileges?",
        r"(?:password|credential|secret|api key|token)s? (?:leak\w*|exposed|disclosed)",
        r"(?:leak\w*|exposed?|disclos\w*) (?:the |user |users' |user's )?"
        r"(?:password|credential|secret|api key|private key)s?",
        r"(?:authentication|auth|login) bypass|bypass(?:es|ed)? (?:the )?(?:authentication|login)",
        r"(?:path|directory) traversal",
        r"ssrf|server[- ]side request forgery",
        r"xxe|xml external entit(?:y|ies)",
        r"open redirect",
        r"insecure deseriali[sz]ation",
        r"security (?:vulnerabilit(?:y|ies)|hole|flaw|issue|bug)",
        r"vulnerabilit(?:y|ies)",
        r"exploit(?:able|ed|s)?",
        r"session (?:fixation|hijack\w*)",
        r"clickjacking",
    )
)


# Issue templates keep their instructions in HTML comments ("report security
# vulnerabilities privately to ..."): that is the template talking, not the reporter.
# RE2 (the ReDoS checker finds a quadratic case on re). Its "$" is the very end of the text,
# where re's also stops before a final newline: a newline more or less changes no keyword.
_HTML_COMMENT = linear(r"(?s)<!--.*?(?:-->|$)")


def without_template_comments(text: str) -> str:
    return _HTML_COMMENT.sub(lambda _: " ", text)


def _security_text(text: str) -> str:
    return without_template_comments(text).lower()


def strong_security_terms(text: str) -> list[str]:
    return _strong_terms(_security_text(text))


def _strong_terms(lowered: str) -> list[str]:
    return sorted({m.group(0) for m in _STRONG_SECURITY.finditer(lowered)})


# -------------------------------------------------------------------------------- labels

# The names live in the domain (the review queue relabels corrected fields with them).
__all__ = [
    "DUPLICATE_LABEL",
    "NEEDS_INFO_LABEL",
    "NEEDS_TRIAGE_LABEL",
    "SECURITY_LABEL",
    "TYPE_LABELS",
]


@dataclass(frozen=True)
class LabelInputs:
    issue_type: IssueType
    priority: Priority | None
    severity: Severity | None
    category: str
    security_sensitive: bool
    missing_information: Iterable[str]
    suggested: Iterable[str]  # fields below their threshold: shown, never labelled
    duplicate: bool


# A field whose value is only a suggestion asks a human to decide; an empty priority or
# severity (nothing in the report supports one) or an unsure area does not.
NEEDS_TRIAGE_FIELDS = ("type", "priority", "severity")


def compose_labels(inputs: LabelInputs) -> list[str]:
    """GitHub labels in a fixed order: type, priority, severity, area, then flags.

    A field below its confidence threshold gets no label: a guess shown as a label is
    noise a maintainer must remove; ``needs-triage`` asks a human to decide instead.
    """
    suggested = set(inputs.suggested)
    labels = []
    if "type" not in suggested:
        labels.append(TYPE_LABELS[inputs.issue_type])
    if inputs.priority is not None and "priority" not in suggested:
        labels.append(f"priority: {inputs.priority.value}")
    if inputs.severity is not None and "severity" not in suggested:
        labels.append(f"severity: {inputs.severity.value}")
    if inputs.category != OTHER and "category" not in suggested:
        labels.append(f"area: {inputs.category}")
    if inputs.security_sensitive:
        labels.append(SECURITY_LABEL)
    if any(True for _ in inputs.missing_information):
        labels.append(NEEDS_INFO_LABEL)
    if suggested.intersection(NEEDS_TRIAGE_FIELDS):
        labels.append(NEEDS_TRIAGE_LABEL)
    if inputs.duplicate:
        labels.append(DUPLICATE_LABEL)
    return labels
