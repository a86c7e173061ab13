"""The email a reporter receives: plain text and HTML, with one-click unsubscribe (RFC 8058).

Only what the notification carries is said: a private report's email names its id and
says it is under review, nothing of its content, link or outcome. Every value is escaped
in the HTML part; the only links are the service's own (the issue, the reply form, the
unsubscribe page).
"""

from __future__ import annotations

import html
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import format_datetime

from ai_pipeline.domain.notifications import UNDER_REVIEW, Notification, NotifyEvent
from ai_pipeline.domain.resolution import ResolutionState

_OUTCOME = {
    ResolutionState.FIXED: "fixed",
    ResolutionState.NOT_PLANNED: "closed as not planned",
    ResolutionState.DUPLICATE: "closed as a duplicate",
}


@dataclass(frozen=True)
class Line:
    text: str
    link: str | None = None  # shown after the text, as the link itself


def render_email(
    n: Notification, *, sender: str, reply_url: str | None, unsubscribe_url: str
) -> EmailMessage:
    subject, lines = _content(n, reply_url)
    lines += [
        Line(f"You get this email because you asked to hear about report {n.bug_report_id}."),
        Line("Stop these emails:", unsubscribe_url),
    ]
    message = EmailMessage()
    message["From"] = sender
    message["To"] = n.target
    message["Subject"] = subject
    message["Date"] = format_datetime(n.created_at)
    # The same id on every retry: a mail client shows a message delivered twice once.
    message["Message-ID"] = f"<{n.delivery_id}@{sender.rpartition('@')[2] or 'ai-pipeline'}>"
    message["Auto-Submitted"] = "auto-generated"
    message["List-Unsubscribe"] = f"<{unsubscribe_url}>"
    message["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    message["X-AI-Pipeline-Event"] = n.event.value
    message["X-AI-Pipeline-Delivery"] = n.delivery_id
    message.set_content(_plain(lines))
    message.add_alternative(_html(subject, lines), subtype="html")
    return message


def _content(n: Notification, reply_url: str | None) -> tuple[str, list[Line]]:
    report = n.bug_report_id
    if n.private:
        return f"Your report {report} was received", [
            Line(f"We have your report {report}: {UNDER_REVIEW}."),
            Line("For your safety this email says nothing more about it."),
        ]
    issue = f"issue #{n.issue_number}"
    if n.event is NotifyEvent.RESOLVED and n.resolution is not None:
        outcome = _OUTCOME.get(n.resolution.state, n.resolution.state.value)
        duplicate = n.resolution.duplicate_issue_number
        if duplicate is not None:
            outcome += f" of #{duplicate}"
        return f"Your report {report} was {outcome}", [
            Line(f"The issue filed from your report {report} was {outcome}:", n.issue_url)
        ]
    if n.event is NotifyEvent.FILED:
        subject = f"Your report {report} was filed as {issue}"
        lines = [Line(f"Your report {report} is now {issue}:", n.issue_url)]
    else:
        subject = f"Your report {report}: we still need a little more"
        lines = [Line(f"A reminder about {issue}, filed from your report {report}:", n.issue_url)]
    if n.questions:
        lines.append(Line("To act on it we need a little more from you:"))
        lines += [Line(f"- {question}") for question in n.questions]
        if reply_url:
            lines.append(Line("Answer here:", reply_url))
    return subject, lines


def _plain(lines: list[Line]) -> str:
    return "\n\n".join(f"{line.text} {line.link}" if line.link else line.text for line in lines)


def _html(subject: str, lines: list[Line]) -> str:
    paragraphs = []
    for line in lines:
        text = html.escape(line.text)
        if line.link:
            href = html.escape(line.link, quote=True)
            text += f' <a href="{href}">{href}</a>'
        paragraphs.append(f"<p>{text}</p>")
    body = "\n".join(paragraphs)
    return (
        f'<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{html.escape(subject)}</title></head>\n<body>\n{body}\n</body></html>\n"
    )
