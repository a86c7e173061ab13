"""The GitHub App mode's domain: which request triages which issue, what the service knows
of an issue, and what it did to it, pass by pass.

An issue opened on GitHub becomes the request ``gh:<owner>:<name>:<number>``; a later pass
over the same issue (the author edited it, or answered our questions) is a request of its
own, ``gh:<owner>:<name>:<number>:<version>``, version 2, 3, … in the order the service
received them. The ``gh:`` prefix is reserved: the API refuses it, so a request with such an
id always came from a verified webhook and its origin can be read off the id.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field

PREFIX = "gh:"
# The idempotency key a webhook's request is stored under; reserved like the prefix.
DELIVERY_KEY_PREFIX = "github-delivery:"
FIRST_VERSION = 1
# Owner and name as GitHub allows them: never a colon, so the id splits unambiguously.
_ID = re.compile(r"gh:([A-Za-z0-9_-]+):([A-Za-z0-9_.-]+):([1-9][0-9]{0,11})(?::([1-9][0-9]{0,5}))?")
# Kept per issue: the author's replies read again at each check, and delivery → version.
MAX_REPLIES = 20
MAX_DELIVERIES = 50

Waiting = Literal["info", "triage"]


@dataclass(frozen=True, order=True)
class IssueRef:
    repository: str  # owner/name, as the webhook spells it
    number: int

    def __str__(self) -> str:
        return f"{self.repository}#{self.number}"


@dataclass(frozen=True)
class Origin:
    """Which pass over which issue a request is."""

    issue: IssueRef
    version: int

    @property
    def bug_report_id(self) -> str:
        owner, name = self.issue.repository.split("/")
        base = f"{PREFIX}{owner}:{name}:{self.issue.number}"
        return base if self.version == FIRST_VERSION else f"{base}:{self.version}"

    @property
    def first_pass_id(self) -> str:
        """The issue's first request: where the duplicate index keeps the issue."""
        return Origin(self.issue, FIRST_VERSION).bug_report_id


def origin_of(bug_report_id: str) -> Origin | None:
    """The issue and pass a request triages, or None for a report sent to the API."""
    match = _ID.fullmatch(bug_report_id)
    if match is None:
        return None
    owner, name, number, version = match.groups()
    return Origin(IssueRef(f"{owner}/{name}", int(number)), int(version or FIRST_VERSION))


def is_reserved(bug_report_id: str) -> bool:
    """Ids only webhooks may create (see the module docstring)."""
    return bug_report_id.lower().startswith(PREFIX)


def is_reserved_key(idempotency_key: str) -> bool:
    """Idempotency keys only webhooks may use."""
    return idempotency_key.lower().startswith(DELIVERY_KEY_PREFIX)


def source_of(bug_report_id: str) -> Literal["api", "github"]:
    return "github" if origin_of(bug_report_id) is not None else "api"


def index_key(bug_report_id: str) -> str:
    """The duplicate index's entry for a report: every pass over an issue is the issue."""
    origin = origin_of(bug_report_id)
    return origin.first_pass_id if origin is not None else bug_report_id


class IssueRecord(BaseModel):
    """What the service knows of one issue: GitHub's facts from the latest webhook, what
    humans did to its labels, and what we did. Changed only through ``merge_*`` below and
    the store's atomic read-modify-write."""

    repository: str
    number: int
    title: str = ""
    author: str | None = None
    state: Literal["open", "closed"] = "open"
    state_reason: str | None = None
    labels: list[str] = Field(default_factory=list)  # as the latest webhook showed them
    updated_at: datetime | None = None  # the issue's, from the latest webhook applied
    # Triage passes: the newest requested, the newest acted on, and which delivery asked
    # for which (a redelivered webhook gets its own version back, never a new one).
    latest_version: int = 0
    acted_version: int = 0
    deliveries: dict[str, int] = Field(default_factory=dict)
    # Set by the last pass acted on: it asked the author questions ("info"), or left a
    # field to a human ("triage"). An edit re-triages while the issue waits; an answer by
    # its author re-checks while it waits for information.
    waiting: Waiting | None = None
    replies: dict[str, str] = Field(default_factory=dict)  # the author's, by comment id
    # Labels people set and removed (never undone, never contradicted), and ours.
    human_added: list[str] = Field(default_factory=list)
    human_removed: list[str] = Field(default_factory=list)
    ours: list[str] = Field(default_factory=list)
    comment_id: int | None = None
    comment_url: str | None = None
    comment_digest: str | None = None  # of the body last posted: an unchanged one is not sent
    comment_deleted: bool = False  # someone deleted our comment: we stay quiet from then on

    @property
    def ref(self) -> IssueRef:
        return IssueRef(self.repository, self.number)

    @property
    def in_flight(self) -> bool:
        return self.latest_version > self.acted_version

    @property
    def waits(self) -> bool:
        """Still waiting for triage: a pass not yet acted on, or one that left questions or
        a field to decide."""
        return self.state == "open" and (self.in_flight or self.waiting is not None)


def new_record(issue: IssueRef) -> IssueRecord:
    return IssueRecord(repository=issue.repository, number=issue.number)


@dataclass(frozen=True)
class IssueFacts:
    """GitHub's view of an issue in one webhook."""

    title: str
    author: str | None
    state: Literal["open", "closed"]
    state_reason: str | None
    labels: tuple[str, ...]
    updated_at: datetime | None


def merge_facts(record: IssueRecord, facts: IssueFacts) -> IssueRecord:
    """The newer of the stored facts and ``facts`` (webhooks can arrive out of order)."""
    stored = record.updated_at
    if stored is not None and facts.updated_at is not None and facts.updated_at < stored:
        return record
    return record.model_copy(
        update={
            "title": facts.title,
            "author": facts.author,
            "state": facts.state,
            "state_reason": facts.state_reason,
            "labels": list(facts.labels),
            "updated_at": facts.updated_at or stored,
        }
    )


def claim_version(record: IssueRecord, delivery: str, first: bool) -> IssueRecord:
    """The pass ``delivery`` asks for: version 1 for the opening, else the next one; a
    delivery seen before keeps the version it was given."""
    if delivery in record.deliveries:
        return record
    version = FIRST_VERSION if first else max(record.latest_version, FIRST_VERSION) + 1
    deliveries = dict(list(record.deliveries.items())[-(MAX_DELIVERIES - 1) :])
    deliveries[delivery] = version
    return record.model_copy(
        update={
            "latest_version": max(record.latest_version, version),
            "deliveries": deliveries,
        }
    )


def merge_reply(record: IssueRecord, comment_id: int, text: str) -> IssueRecord:
    replies = dict(record.replies)
    replies[str(comment_id)] = text
    kept = dict(list(replies.items())[-MAX_REPLIES:])
    return record.model_copy(update={"replies": kept})


def merge_label_change(record: IssueRecord, label: str, added: bool, by_human: bool) -> IssueRecord:
    """A label a person added or removed: kept for good, so it is never undone. Removing
    one of ours makes it theirs to decide, too."""
    if not by_human:
        return record
    key = label.lower()
    added_set = [x for x in record.human_added if x.lower() != key]
    removed = [x for x in record.human_removed if x.lower() != key]
    (added_set if added else removed).append(label)
    ours = [x for x in record.ours if x.lower() != key]
    return record.model_copy(
        update={"human_added": added_set, "human_removed": removed, "ours": ours}
    )


class ActedOn(BaseModel):
    """What one pass did: the ``github`` step's ``data.acted_on``."""

    repository: str
    issue_number: int
    issue_url: str | None = None
    comment_url: str | None = None
    labels_applied: list[str] = Field(default_factory=list)
    labels_suggested: list[str] = Field(default_factory=list)
    labels_removed: list[str] = Field(default_factory=list)
    assignee: str | None = None
    mode: Literal["suggest", "apply"] = "suggest"
    version: int = FIRST_VERSION
    # Why nothing was posted, when nothing was: "quiet" (nothing useful to say), "closed",
    # "locked", "gone" (deleted or transferred), "superseded" (a later pass acted first),
    # "comment_deleted" (a person deleted our comment).
    skipped: str | None = None


class ActionRecord(BaseModel):
    """The ledger: one entry per (repository, issue, triage version)."""

    repository: str
    number: int
    version: int
    request_id: str
    state: Literal["pending", "done"]
    acted_on: ActedOn | None = None

    @property
    def ref(self) -> IssueRef:
        return IssueRef(self.repository, self.number)


def shown_where_filed(candidate_id: str, filing_repository: str | None) -> bool:
    """Whether a duplicate candidate may be shown on an issue filed in ``filing_repository``
    (None: the local tracker): an issue of another GitHub repository may not: its number
    means another issue there, and its title may be a private repository's."""
    origin = origin_of(candidate_id)
    if origin is None:
        return True
    return filing_repository is not None and (
        origin.issue.repository.lower() == filing_repository.lower()
    )


def github_metadata(metadata: Mapping[str, Any]) -> Mapping[str, Any]:
    """The ``github`` part of a report's metadata the intake wrote, or an empty mapping."""
    found = metadata.get("github")
    return found if isinstance(found, dict) else {}


def acted_on_data(acted: ActedOn) -> dict[str, Any]:
    return {"acted_on": acted.model_dump(mode="json")}


class InPlaceDraft(BaseModel):
    """What the ticket-creation agent drafts for an issue opened on GitHub: the comment
    (all but its labels line, which depends on the issue's labels when we act) and the
    label plan. Everything in it may be shown on the issue."""

    repository: str
    issue_number: int
    version: int
    labels: list[str]  # what triage would set, in compose order, flags included
    assignee: str | None = None  # a user to assign in apply mode
    mention: str | None = None  # an owner to @-mention (the security notice only)
    questions: list[str] = Field(default_factory=list)
    # Something worth saying whatever the labels: likely duplicates, questions, the notice.
    substance: bool = False
    security_notice: bool = False
    body: str = ""  # the comment after its labels line
    waiting: Waiting | None = None
