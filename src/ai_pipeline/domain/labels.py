"""The names of the labels triage gives, as filing uses them (and a human's labels of the
same families are never contradicted)."""

from __future__ import annotations

from typing import Final

from ai_pipeline.domain.models import IssueType

TYPE_LABELS: Final = {
    IssueType.BUG: "bug",
    IssueType.FEATURE: "enhancement",
    IssueType.QUESTION: "question",
}
SECURITY_LABEL: Final = "security"
NEEDS_INFO_LABEL: Final = "needs-info"
NEEDS_TRIAGE_LABEL: Final = "needs-triage"
DUPLICATE_LABEL: Final = "possible-duplicate"
PRIORITY_PREFIX: Final = "priority: "
SEVERITY_PREFIX: Final = "severity: "
