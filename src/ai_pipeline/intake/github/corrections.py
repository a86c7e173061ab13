"""A person's labels on an issue as a training example, in the review queue's format
(``domain.review.training_example``), so ``reviews export`` and ``train --from`` read them."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from ai_pipeline.domain.github import Origin
from ai_pipeline.domain.github_labels import family_of, value_in
from ai_pipeline.intake.github.payloads import Issue

SECURITY_LABELS = frozenset({"security", "vulnerability"})


def correction_example(origin: Origin, issue: Issue, at: datetime) -> dict[str, Any]:
    """The issue's labels after a person changed them. Raw label values are kept ("P1",
    "enhancement"): the trainer maps them and lists what it cannot."""
    values: dict[str, str] = {}
    for label in issue.label_names:
        family = family_of(label)
        if family in ("type", "priority", "severity"):
            values.setdefault(family, value_in(label))
    names = {label.lower() for label in issue.label_names}
    return {
        "id": origin.first_pass_id,
        "request_id": None,
        "title": issue.title,
        "body": issue.body or "",
        "type": values.get("type"),
        "priority": values.get("priority"),
        "severity": values.get("severity"),
        "security": True if names & SECURITY_LABELS else None,
        "labels": list(issue.label_names),
        "duplicate_of": None,
        "repo": origin.issue.repository,
        "source": "github",
        "created_at": at.isoformat(),
    }
