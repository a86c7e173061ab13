"""Labels on an issue we triage in place: families, and what we may add or remove.

Humans win. A label family (type, priority, severity, area) in which someone else set a
label is theirs: we add nothing to it. A label a person removed is never added again. We
remove only our own labels: ``needs-info`` once the author answered, and our earlier label
of a family a later pass of ours decides differently. Nothing else is ever removed.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Literal

from ai_pipeline.domain.labels import NEEDS_INFO_LABEL, NEEDS_TRIAGE_LABEL

FAMILIES = ("type", "priority", "severity", "area")
NEEDS_INFO = NEEDS_INFO_LABEL
NEEDS_TRIAGE = NEEDS_TRIAGE_LABEL

# Our names (triage.rules.compose_labels) and the conventions repositories commonly use:
# "type: bug", "kind/bug", "priority/P1", "P1", "severity: major", "S2", "area/ui",
# "component: ui".
_TYPE_NAMES = frozenset(
    {
        "bug",
        "defect",
        "regression",
        "enhancement",
        "feature",
        "feature request",
        "improvement",
        "task",
        "question",
        "support",
        "help wanted",
        "documentation",
        "docs",
    }
)
_PREFIXED = re.compile(
    r"(?P<family>type|kind|priority|prio|severity|sev|area|component|comp)\s*[:/]", re.I
)
_PREFIX_FAMILY = {
    "type": "type",
    "kind": "type",
    "priority": "priority",
    "prio": "priority",
    "severity": "severity",
    "sev": "severity",
    "area": "area",
    "component": "area",
    "comp": "area",
}
_SHORT = re.compile(r"(?P<letter>[ps])[0-4]", re.I)


def family_of(label: str) -> str | None:
    """The family ``label`` belongs to, or None for a flag (needs-info, security…)."""
    name = label.strip().lower()
    if name in _TYPE_NAMES:
        return "type"
    prefixed = _PREFIXED.match(name)
    if prefixed:
        return _PREFIX_FAMILY[prefixed.group("family").lower()]
    short = _SHORT.fullmatch(name)
    if short:
        return "priority" if short.group("letter").lower() == "p" else "severity"
    return None


def value_in(label: str) -> str:
    """``label`` without its family prefix ("priority: high" → "high")."""
    prefixed = _PREFIXED.match(label.strip())
    return label.strip()[prefixed.end() :].strip() if prefixed else label.strip()


@dataclass(frozen=True)
class LabelDecision:
    add: list[str] = field(default_factory=list)  # applied now (apply mode)
    suggest: list[str] = field(default_factory=list)  # shown as "would apply" (suggest)
    remove: list[str] = field(default_factory=list)  # ours only
    held_back: list[str] = field(default_factory=list)  # a person decided that family


def _lower(labels: Iterable[str]) -> set[str]:
    return {label.lower() for label in labels}


def decide_labels(
    wanted: Sequence[str],
    live: Sequence[str],
    ours: Sequence[str],
    human_removed: Sequence[str],
    mode: Literal["suggest", "apply"],
) -> LabelDecision:
    """What to do with the issue's labels, given what triage wants (``wanted``), what the
    issue carries now (``live``), which of those we set (``ours``) and what people removed."""
    live_lower, ours_lower = _lower(live), _lower(ours)
    theirs = [label for label in live if label.lower() not in ours_lower]
    human_families = {family_of(label) for label in theirs} - {None}
    removed_lower = _lower(human_removed)
    new: list[str] = []
    held: list[str] = []
    for label in dict.fromkeys(wanted):
        if label.lower() in live_lower:
            continue
        family = family_of(label)
        if label.lower() in removed_lower or (family and family in human_families):
            held.append(label)
        else:
            new.append(label)
    if mode == "suggest":
        return LabelDecision(suggest=new, held_back=held)
    replaced = {family_of(label) for label in new} - {None}
    wanted_lower = _lower(wanted)
    remove = [
        label
        for label in live
        if label.lower() in ours_lower
        and label.lower() not in wanted_lower
        and (label.lower() == NEEDS_INFO or family_of(label) in replaced)
    ]
    return LabelDecision(add=new, remove=remove, held_back=held)
