"""An issue as the report the triage agent reads: title, body, and the author's answers."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ai_pipeline.domain.github import Origin
from ai_pipeline.domain.models import MAX_TEXT, MAX_TITLE, BugReport
from ai_pipeline.intake.github.decisions import Trigger
from ai_pipeline.intake.github.payloads import Issue, Repository

NO_BODY = "(The issue has no description.)"
REPLY_HEADING = "Reply from the author"
_NOREPLY = "users.noreply.github.com"


def report_for(
    origin: Origin,
    issue: Issue,
    repository: Repository,
    replies: Mapping[str, str],
    trigger: Trigger,
    delivery_id: str,
) -> BugReport:
    """The report of one pass over ``issue``; ``replies`` are the author's answers so far,
    appended under headings so that triage's missing-information rules read them."""
    description = (issue.body or "").strip() or NO_BODY
    for text in replies.values():
        if text.strip():
            description += f"\n\n### {REPLY_HEADING}\n\n{text.strip()}"
    github: dict[str, Any] = {
        "repository": repository.full_name,
        "issue_number": issue.number,
        "version": origin.version,
        "url": issue.html_url,
        "repository_url": repository.html_url,
        "private": repository.private,
        "author": issue.author,
        "trigger": trigger,
        "delivery": delivery_id,
    }
    return BugReport(
        id=origin.bug_report_id,
        title=" ".join(issue.title.split())[:MAX_TITLE] or f"Issue #{issue.number}",
        description=description[:MAX_TEXT],
        # GitHub's own no-reply address for the account: never a real mailbox of theirs.
        reporter=f"{issue.author or 'ghost'}@{_NOREPLY}",
        metadata={"source": "github", "github": github},
    )
