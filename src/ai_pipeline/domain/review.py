"""The review queue's rules: which triaged reports wait for a maintainer, and what a
maintainer's correction does to a triage result.

A held report is not drafted until released; nothing times it out (it waits for a person).
A correction's values are the maintainer's own, so they count as certain (confidence 1)
and the ``needs-triage`` label goes: a human decided.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import datetime
from typing import Any, Final, Literal

from pydantic import BaseModel, ConfigDict, Field

from ai_pipeline.domain.models import (
    BugReport,
    DuplicateCandidate,
    IssueType,
    Priority,
    Severity,
    TriageResult,
)

NEEDS_TRIAGE: Final = "needs-triage"
SECURITY: Final = "security"
HoldReason = Literal["needs-triage", "security"]
HOLD_REASONS: tuple[HoldReason, ...] = (NEEDS_TRIAGE, SECURITY)

_LABEL = re.compile(r"^[^\x00-\x1f\x7f,]{1,50}$")


class HoldPolicy:
    def __init__(self, reasons: Iterable[str] = ()):
        wanted = set(reasons)
        unknown = wanted - set(HOLD_REASONS)
        if unknown:
            raise ValueError(
                f"unknown review hold reason(s) {sorted(unknown)}: use {', '.join(HOLD_REASONS)}"
            )
        self.reasons: tuple[str, ...] = tuple(r for r in HOLD_REASONS if r in wanted)

    @classmethod
    def from_setting(cls, value: str) -> HoldPolicy:
        return cls(part.strip() for part in value.split(",") if part.strip())

    def hold_reasons(self, triage: TriageResult) -> list[str]:
        """Why this result waits for review; empty when it goes straight on."""
        found = []
        if NEEDS_TRIAGE in self.reasons and NEEDS_TRIAGE in triage.labels:
            found.append(NEEDS_TRIAGE)
        if SECURITY in self.reasons and triage.security_sensitive:
            found.append(SECURITY)
        return found


class Correction(BaseModel):
    """A maintainer's corrections; a field left out keeps triage's value."""

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
    """``triage`` with the maintainer's values; raises ValueError on an invalid label."""
    update: dict[str, Any] = {}
    confidence = dict(triage.confidence)
    fields = correction.model_fields_set
    for name in ("type", "priority", "severity", "security_sensitive"):
        value = getattr(correction, name)
        if name in fields and value is not None:
            update[name] = value
            confidence[name if name != "security_sensitive" else "security"] = 1.0
    labels = triage.labels if correction.labels is None else correction.labels
    update["labels"] = _valid_labels(labels)
    if "duplicate_of_issue" in fields:
        update["duplicate_of"] = _duplicate(triage, correction.duplicate_of_issue)
        confidence["duplicate"] = 1.0
    update["confidence"] = confidence
    return triage.model_copy(update=update)


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
        "priority": triage.priority.value,
        "severity": triage.severity.value,
        "security": triage.security_sensitive,
        "labels": triage.labels,
        "duplicate_of": duplicate.bug_report_id if duplicate else None,
        "repo": "review",
        "created_at": at.isoformat(),
    }
