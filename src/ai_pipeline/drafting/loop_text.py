"""What the pipeline writes on an issue after filing it: a reporter's reply, the one
reminder, the closing note, and the body's questions marked answered.

A reply is reporter text: redacted first (``domain.redaction``), then made inert exactly
as a report is (``drafting.template.inert``: no mentions, links, HTML or structure).
"""

from __future__ import annotations

from collections.abc import Sequence

from ai_pipeline.domain.redaction import Redactor
from ai_pipeline.drafting.marker import marker
from ai_pipeline.drafting.template import clip, prose
from ai_pipeline.triage.rules import request_for

REPLY_BUDGET = 8_000
ANSWERED = "(answered by the reporter)"


def reply_comment(key: str, text: str, redactor: Redactor) -> str:
    said = prose(clip(redactor.redact(text), REPLY_BUDGET), REPLY_BUDGET)
    return (
        f"### The reporter replied\n\n{said}\n\n"
        "<sub>Posted by AI Pipeline for the reporter, whose contact details stay in the"
        " service.</sub>\n"
        f"{marker(key)}\n"
    )


def reminder_comment(key: str, questions: Sequence[str]) -> str:
    asks = "\n".join(f"- {prose(request_for(q))}" for q in questions)
    return (
        "### Still needed from the reporter\n\n"
        f"We have asked the reporter again, once, for:\n{asks}\n\n"
        "<sub>AI Pipeline sends one reminder; a maintainer's word keeps this issue open.</sub>\n"
        f"{marker(key)}\n"
    )


def closing_comment(key: str, days: str) -> str:
    return (
        "### Closed: the information needed did not come\n\n"
        f"The questions above went unanswered ({days}). Closed as not planned; reopen it"
        " when the answers arrive.\n"
        f"{marker(key)}\n"
    )


def mark_answered(body: str, answered: Sequence[str]) -> str:
    """The issue body with the questions of ``answered`` struck through and marked (the
    body's "Missing information" list, as ``drafting.template`` wrote it); idempotent."""
    for field in answered:
        line = f"- {prose(request_for(field))}"
        body = body.replace(f"{line}\n", f"- ~~{line[2:]}~~ {ANSWERED}\n")
    return body
