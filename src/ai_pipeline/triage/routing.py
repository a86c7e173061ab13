"""Who should look at a report: CODEOWNERS-style rules over triage results and stack traces.

A routing file has one rule per line, ``<selector> <owner> [<owner> …]``; ``#`` starts a
comment. Like CODEOWNERS, the *last* matching rule wins, so general rules go first::

    # selector              owners
    category:*              @acme/triage
    category:ui             @acme/frontend
    label:security          @acme/security
    type:feature            @acme/product
    path:src/net/**         @alice @acme/networking
    path:**/*.sql           @acme/data

Selectors: ``category:``, ``label:``, ``type:``, ``priority:`` (glob on the value) and
``path:`` (a glob matched against file paths found in the report's stack traces and error
output). ``@name`` is an assignee, ``@org/team`` a team. The suggestion says which rule
matched and why, so a human can see the reason in the issue.
"""

from __future__ import annotations

import fnmatch
import functools
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from ai_pipeline.domain.models import AssigneeSuggestion, BugReport, TriageResult
from ai_pipeline.text.patterns import Pattern, escape, linear

SELECTORS = ("category", "label", "type", "priority", "path")
_OWNER = re.compile(r"^@[A-Za-z0-9](?:[A-Za-z0-9-]{0,38})(?:/[A-Za-z0-9_.-]{1,100})?$")

# File paths as stack traces and compilers print them:
#   File "src/app/models.py", line 12          (Python)
#   at com.acme.net.Client.send(Client.java:42) (JVM: the package becomes a path)
#   at render (src/ui/Button.tsx:10:5)          (JavaScript)
#   src/net/http.c:88: error: …                 (C, Go, Rust, grep-like output)
# Python's re, each proven linear by the ReDoS checker (tests/unit/test_linear_patterns.py).
_PY_FRAME = re.compile(r'File "([^"\n]{1,300})", line \d+')
_JVM_FRAME = re.compile(r"\bat ((?:[a-z_][\w$]*\.)+)[A-Z][\w$]*\.[\w$<>]+\((\w+\.\w+):\d+\)")
_PATH_WITH_LINE = re.compile(
    r"(?<![\w/.-])(/?(?:[\w.-]+/)*[\w.-]+\.[A-Za-z][\w]{0,9}):\d+(?::\d+)?\b"
)
MAX_PATHS = 50


class RoutingError(ValueError):
    """A routing file line that cannot be understood (reported with its line number)."""


@dataclass(frozen=True)
class Rule:
    selector: str
    pattern: str
    owners: tuple[str, ...]
    line: int

    def matches(self, values: Iterable[str]) -> str | None:
        """The first value the rule matches, if any; of a path, the part the rule names."""
        for value in values:
            if self.selector != "path":
                if fnmatch.fnmatchcase(value.lower(), self.pattern.lower()):
                    return value
            elif (named := _named_part(value, self.pattern)) is not None:
                return named
        return None

    def describe(self) -> str:
        return f"{self.selector}:{self.pattern}"


class Router:
    """Pure: the rules are parsed once; :meth:`route` reads only the report and result."""

    def __init__(self, rules: Iterable[Rule], source: str = "routing rules") -> None:
        self.rules = tuple(rules)
        self.source = source

    @classmethod
    def parse(cls, text: str, source: str = "routing rules") -> Router:
        rules = []
        for number, raw in enumerate(text.splitlines(), start=1):
            line = raw.split("#", 1)[0].strip()
            if line:
                rules.append(_parse_rule(line, number, source))
        return cls(rules, source)

    @classmethod
    def load(cls, path: Path) -> Router:
        return cls.parse(path.read_text(encoding="utf-8"), source=path.name)

    def route(self, report: BugReport, result: TriageResult) -> AssigneeSuggestion | None:
        # Only decided values route: a suggestion below its threshold must not pick an owner.
        values = {
            "category": [result.category] if result.decided("category") else [],
            "label": list(result.labels),
            "type": [result.type.value] if result.decided("type") else [],
            "priority": [result.priority.value]
            if result.priority is not None and result.decided("priority")
            else [],
            "path": paths_in_text(report.full_text()),
        }
        for rule in reversed(self.rules):  # the last matching rule wins
            matched = rule.matches(values[rule.selector])
            if matched is not None:
                return _suggestion(rule, matched, self.source)
        return None

    def apply(self, report: BugReport, result: TriageResult) -> TriageResult:
        suggestion = self.route(report, result)
        if suggestion is None:
            return result
        return result.model_copy(
            update={
                "assignee_suggestion": suggestion,
                "reasons": {**result.reasons, "assignee": suggestion.reason},
            }
        )


def _parse_rule(line: str, number: int, source: str) -> Rule:
    selector_text, *owners = line.split()
    selector, sep, pattern = selector_text.partition(":")
    where = f"{source}, line {number}"
    if not sep or selector not in SELECTORS or not pattern:
        raise RoutingError(
            f"{where}: {selector_text!r} is not a selector"
            f" (one of {', '.join(s + ':<glob>' for s in SELECTORS)})"
        )
    if not owners:
        raise RoutingError(f"{where}: {selector_text!r} names no owner")
    for owner in owners:
        if not _OWNER.match(owner):
            raise RoutingError(f"{where}: {owner!r} is not @user or @org/team")
    return Rule(selector, pattern, tuple(owners), number)


def _suggestion(rule: Rule, matched: str, source: str) -> AssigneeSuggestion:
    users = [o[1:] for o in rule.owners if "/" not in o]
    teams = [o[1:] for o in rule.owners if "/" in o]
    subject = f"path {matched}" if rule.selector == "path" else f"{rule.selector} {matched}"
    return AssigneeSuggestion(
        assignee=users[0] if users else None,
        team=teams[0] if teams else None,
        reason=f"{subject} matches {rule.describe()} ({source}, line {rule.line})",
    )


def paths_in_text(text: str) -> list[str]:
    """Source paths named by stack-trace frames and compiler-style ``file:line`` output."""
    found: dict[str, None] = {}
    for match in _PY_FRAME.finditer(text):
        found[match.group(1).replace("\\", "/")] = None
    for match in _JVM_FRAME.finditer(text):
        package, file_name = match.groups()
        found[package.replace(".", "/") + file_name] = None
    # A JVM frame's bare "Client.java:42" is already counted as its package path.
    for match in _PATH_WITH_LINE.finditer(_JVM_FRAME.sub(" ", text)):
        found[match.group(1)] = None
        if len(found) >= MAX_PATHS:
            break
    return list(found)[:MAX_PATHS]


def _named_part(path: str, pattern: str) -> str | None:
    """The shortest end of ``path`` that ``pattern`` matches, CODEOWNERS-like: ``**`` spans
    directories, a pattern without a slash matches a file name anywhere, a pattern ending
    in ``/`` (or ``/**``) matches a whole directory, and any pattern also matches a suffix of
    the path (traces print absolute or site-relative paths: ``/home/ci/app/src/net/x.py``
    still matches ``src/net/**``). The shortest, so that a reason quoting it names what the
    rule is about, not where the reporter's machine keeps it."""
    pattern = pattern.lstrip("/")
    if pattern.endswith("/"):
        pattern += "**"
    if "/" not in pattern:
        name = path.rsplit("/", 1)[-1]
        return name if fnmatch.fnmatchcase(name, pattern) else None
    glob = _glob(pattern)
    if glob.search(path) is None:  # one pass decides; the suffixes are tried on a match only
        return None
    starts = [i + 1 for i, c in enumerate(path) if c == "/"]
    for start in [*reversed(starts), 0]:
        if glob.fullmatch(path[start:]) is not None:
            return path[start:]
    return path  # unreachable: the search matched one of these suffixes


@functools.cache
def _glob(pattern: str) -> Pattern:
    """A path glob as an RE2 pattern (linear whatever the globs; compiled once each)."""
    parts = []
    i = 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            parts.append(r"(?:[^/]+/)*")
            i += 3
        elif pattern.startswith("**", i):
            parts.append(r".*")
            i += 2
        elif pattern[i] == "*":
            parts.append(r"[^/]*")
            i += 1
        elif pattern[i] == "?":
            parts.append(r"[^/]")
            i += 1
        else:
            parts.append(escape(pattern[i]))
            i += 1
    return linear(r"(?:^|/)(?:" + "".join(parts) + r")$")
