"""What a webhook delivery asks of the service, decided from the delivery alone and what the
service already knows of the issue.

- ``issues.opened``: triage the issue in place.
- ``issues.edited`` (title or body) while the issue still waits (a pass in flight, or our
  last one asked questions or left a field to a human): triage it again.
- ``issue_comment.created`` by the issue's author while it waits for information: check
  again, with the answer.
- ``issues.labeled``/``unlabeled`` by a person: a correction, kept; ``closed``/``reopened``:
  the issue's state. Both are recorded.
- ``ping`` and ``installation*``: acknowledged.
- Anything else, pull requests, bots (our own App included) and repositories outside the
  configured ones: ignored, each counted by its reason.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from typing import Literal

from ai_pipeline.domain.github import IssueFacts, IssueRecord, IssueRef
from ai_pipeline.intake.github.payloads import Delivery, Issue

Trigger = Literal["opened", "edited", "answered"]
ACKNOWLEDGED = frozenset(
    {"ping", "installation", "installation_repositories", "installation_target"}
)
RECORDED_ACTIONS = frozenset({"labeled", "unlabeled", "closed", "reopened"})


@dataclass(frozen=True)
class Ignore:
    reason: str  # event, action, repository, pull_request, bot, not_waiting, not_author…


@dataclass(frozen=True)
class Acknowledge:
    what: str  # the event: ping, installation…


@dataclass(frozen=True)
class Triage:
    issue: IssueRef
    trigger: Trigger
    facts: IssueFacts
    reply: tuple[int, str] | None = None  # the author's answer (comment id, text)

    @property
    def first(self) -> bool:
        return self.trigger == "opened"


@dataclass(frozen=True)
class Record:
    issue: IssueRef
    facts: IssueFacts
    what: str  # labeled, unlabeled, closed, reopened
    label: str | None = None
    by_human: bool = True


Decision = Ignore | Acknowledge | Triage | Record


def facts_of(issue: Issue) -> IssueFacts:
    return IssueFacts(
        title=issue.title,
        author=issue.author,
        state="closed" if issue.state == "closed" else "open",
        state_reason=issue.state_reason,
        labels=issue.label_names,
        updated_at=issue.updated_at,
    )


def decide(
    delivery: Delivery, repositories: Collection[str], known: IssueRecord | None
) -> Decision:
    """``repositories``: lower-cased owner/name of the repositories acted on; ``known``:
    the stored record of the delivery's issue, if any."""
    if delivery.event in ACKNOWLEDGED:
        return Acknowledge(delivery.event)
    if delivery.event not in ("issues", "issue_comment"):
        return Ignore("event")
    issue = delivery.issue
    repository = delivery.repository
    if issue is None or repository is None:
        return Ignore("event")
    if repository.full_name.lower() not in repositories:
        return Ignore("repository")
    if issue.pull_request is not None:
        return Ignore("pull_request")
    ref = IssueRef(repository.full_name, issue.number)
    if delivery.event == "issue_comment":
        return _comment(delivery, ref, known)
    return _issue_action(delivery, ref, known)


def _issue_action(delivery: Delivery, ref: IssueRef, known: IssueRecord | None) -> Decision:
    issue, action = delivery.issue, delivery.action
    assert issue is not None  # checked by decide
    sender_is_bot = delivery.sender is not None and delivery.sender.is_bot
    if action in RECORDED_ACTIONS:
        label = delivery.label.name if delivery.label else None
        if action in ("labeled", "unlabeled") and label is None:
            return Ignore("action")
        return Record(ref, facts_of(issue), action or "", label, by_human=not sender_is_bot)
    if sender_is_bot or (issue.user is not None and issue.user.is_bot):
        return Ignore("bot")
    if action == "opened":
        return Triage(ref, "opened", facts_of(issue))
    if action != "edited":
        return Ignore("action")
    changes = delivery.changes
    if changes is None or (changes.title is None and changes.body is None):
        return Ignore("action")
    if known is None or not known.waits:
        return Ignore("not_waiting")
    return Triage(ref, "edited", facts_of(issue))


def _comment(delivery: Delivery, ref: IssueRef, known: IssueRecord | None) -> Decision:
    issue, comment = delivery.issue, delivery.comment
    assert issue is not None and comment is not None  # checked by payloads.parse
    if delivery.action != "created":
        return Ignore("action")
    commenter = comment.user or delivery.sender
    if commenter is None or commenter.is_bot:
        return Ignore("bot")
    if issue.author is None or commenter.login.lower() != issue.author.lower():
        return Ignore("not_author")
    # Waiting for information, or not yet acted on: the answer may settle what is asked.
    if known is None or known.state != "open" or not (known.waiting == "info" or known.in_flight):
        return Ignore("not_waiting")
    return Triage(ref, "answered", facts_of(issue), (comment.id, comment.body or ""))
