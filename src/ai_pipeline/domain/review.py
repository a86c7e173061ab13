"""The review queue's rules: which triaged reports wait for a maintainer, and what a
maintainer's correction does to a triage result.

A held report is not drafted until released; nothing times it out (it waits for a person).
A correction's values are the maintainer's own, so they count as certain (confidence 1)
and the ``needs-triage`` label goes: a human decided.

A report in the security ``review`` band is always held while security reports are filed
privately: a maintainer decides. Released with the flag cleared it is filed publicly;
released with the flag kept (or untouched) it is filed privately.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import datetime
from typing import Any, Final, Literal

from pydantic import BaseModel, ConfigDict, Field

from ai_pipeline.domain.labels import (
    NEEDS_TRIAGE_LABEL,
    PRIORITY_PREFIX,
    SECURITY_LABEL,
    SEVERITY_PREFIX,
    TYPE_LABELS,
)
from ai_pipeline.domain.models import (
    BugReport,
    DuplicateCandidate,
    IssueType,
    Priority,
    SecurityBand,
    Severity,
    TriageResult,
)

NEEDS_TRIAGE: Final = NEEDS_TRIAGE_LABEL
SECURITY: Final = SECURITY_LABEL
SECURITY_REVIEW: Final = "security-review"  # the review band: held whatever the setting
HoldReason = Literal["needs-triage", "security"]
HOLD_REASONS: tuple[HoldReason, ...] = (NEEDS_TRIAGE, SECURITY)

_LABEL = re.compile(r"^[^\x00-\x1f\x7f,]{1,50}$")


class HoldPolicy:
    """``reasons``: what ``AI_PIPELINE_REVIEW_HOLD`` names. ``review_band``: hold the
    security review band (true while security reports are filed privately)."""

    def __init__(self, reasons: Iterable[str] = (), review_band: bool = True):
        wanted = set(reasons)
        unknown = wanted - set(HOLD_REASONS)
        if unknown:
            raise ValueError(
                f"unknown review hold reason(s) {sorted(unknown)}: use {', '.join(HOLD_REASONS)}"
            )
        self.configured: tuple[str, ...] = tuple(r for r in HOLD_REASONS if r in wanted)
        self.review_band = review_band

    @classmethod
    def from_setting(cls, value: str, review_band: bool = True) -> HoldPolicy:
        return cls((part.strip() for part in value.split(",") if part.strip()), review_band)

    @property
    def reasons(self) -> tuple[str, ...]:
        """Every kind of report this policy holds."""
        return (*self.configured, *((SECURITY_REVIEW,) if self.review_band else ()))

    def hold_reasons(self, triage: TriageResult) -> list[str]:
        """Why this result waits for review; empty when it goes straight on."""
        found = []
        if NEEDS_TRIAGE in self.configured and NEEDS_TRIAGE in triage.labels:
            found.append(NEEDS_TRIAGE)
        if SECURITY in self.configured and triage.security_sensitive:
            found.append(SECURITY)
        if self.review_band and triage.security_band is SecurityBand.REVIEW:
            found.append(SECURITY_REVIEW)
        return found


class Correction(BaseModel):
    """A maintainer's corrections; a field left out keeps triage's value. ``priority`` or
    ``severity`` given as null empties it; ``security_sensitive`` settles the band (true:
    private, false: public)."""

    model_config = ConfigDict(extra="forbid")

    type: IssueType | None = None
    priority: Priority | None = None
    severity: Severity | None = None
    labels: list[str] | None = Field(default=None, max_length=30)
    # The open issue this report duplicates; null: it duplicates nothing.
    duplicate_of_issue: int | None = Field(default=None, ge=1)
    security_sensitive: bool | None = None

    def changed(self) -> dict[str, Any]:
        return self.model_dump(mode="json", exclude_unset=True)


def _valid_labels(labels: list[str]) -> list[str]:
    cleaned = []
    for label in labels:
        label = label.strip()
        if not _LABEL.match(label):
            raise ValueError(f"label {label!r}: 1-50 characters, no commas or control characters")
        if label != NEEDS_TRIAGE and label not in cleaned:
            cleaned.append(label)
    return cleaned


def corrected(triage: TriageResult, correction: Correction) -> TriageResult:
    """``triage`` with the maintainer's values; raises ValueError on an invalid label.

    Corrected fields become certain (confidence 1, no longer suggestions, reason "set in
    review"); without corrected labels, the labels of corrected fields follow their new
    values. A report of the security review band leaves review private unless cleared."""
    values = triage.model_dump()
    confidence, reasons = dict(triage.confidence), dict(triage.reasons)
    fields = correction.model_fields_set
    decided: set[str] = set()
    for name in ("type", "priority", "severity"):
        value = getattr(correction, name)
        if name in fields and (value is not None or name != "type"):
            values[name] = value
            decided.add(name)
    band = triage.security_band
    if "security_sensitive" in fields and correction.security_sensitive is not None:
        band = SecurityBand.PRIVATE if correction.security_sensitive else SecurityBand.PUBLIC
        decided.add("security")
    elif band is SecurityBand.REVIEW:
        band = SecurityBand.PRIVATE  # released with the flag standing: a human kept it
        decided.add("security")
    values["security_band"] = band
    values["security_sensitive"] = band is not SecurityBand.PUBLIC
    if "duplicate_of_issue" in fields:
        values["duplicate_of"] = _duplicate(triage, correction.duplicate_of_issue)
        decided.add("duplicate")
    for name in decided:
        confidence[name] = 1.0
        reasons[name] = "set in review"
    values |= {
        "confidence": confidence,
        "reasons": reasons,
        "suggested": [f for f in triage.suggested if f not in decided],
    }
    result = TriageResult.model_validate(values)
    labels = triage.labels if correction.labels is None else correction.labels
    if correction.labels is None:
        labels = _relabel(labels, result, decided)
    return result.model_copy(update={"labels": _valid_labels(labels)})


def _relabel(labels: list[str], result: TriageResult, decided: set[str]) -> list[str]:
    """Labels with the family of each corrected field replaced by its new value's label."""
    own: dict[str, list[str]] = {
        "type": [TYPE_LABELS[result.type]],
        "priority": [PRIORITY_PREFIX + result.priority.value] if result.priority else [],
        "severity": [SEVERITY_PREFIX + result.severity.value] if result.severity else [],
        "security": [SECURITY] if result.security_sensitive else [],
    }
    relabelled = list(labels)
    for name in sorted(decided & own.keys()):
        relabelled = [x for x in relabelled if _family(x) != name] + own[name]
    return relabelled


def _family(label: str) -> str | None:
    if label in TYPE_LABELS.values():
        return "type"
    if label.startswith(PRIORITY_PREFIX):
        return "priority"
    if label.startswith(SEVERITY_PREFIX):
        return "severity"
    return "security" if label == SECURITY else None


def _duplicate(triage: TriageResult, issue: int | None) -> DuplicateCandidate | None:
    if issue is None:
        return None
    for candidate in triage.duplicate_candidates:
        if candidate.issue_number == issue:
            return candidate.model_copy(update={"similarity": 1.0})
    return DuplicateCandidate(bug_report_id=f"issue-{issue}", issue_number=issue, similarity=1.0)


def training_example(
    request_id: str, report: BugReport, triage: TriageResult, at: datetime
) -> dict[str, Any]:
    """The correction as a row of ``ai-pipeline train --from`` (``triage.export``)."""
    duplicate = triage.duplicate_of
    return {
        "id": report.id,
        "request_id": request_id,
        "title": report.title,
        "body": report.description,
        "type": triage.type.value,
        "priority": triage.priority.value if triage.priority else None,
        "severity": triage.severity.value if triage.severity else None,
        "security": triage.security_sensitive,
        "labels": triage.labels,
        "duplicate_of": duplicate.bug_report_id if duplicate else None,
        "repo": "review",
        "created_at": at.isoformat(),
    }


def settled_band(
    triage: dict[str, Any], review: dict[str, Any] | None, released: bool
) -> SecurityBand:
    """A request's security band once review had its say: ``triage`` is the triage step's
    data, ``review`` the review step's (``released``: completed). A result stored before
    bands existed has only its flag (flagged: private)."""
    band = SecurityBand(
        triage.get("security_band") or ("private" if triage.get("security_sensitive") else "public")
    )
    if not released:
        return band
    flag = (review or {}).get("corrections", {}).get("security_sensitive")
    if flag is not None:
        return SecurityBand.PRIVATE if flag else SecurityBand.PUBLIC
    return SecurityBand.PRIVATE if band is SecurityBand.REVIEW else band
