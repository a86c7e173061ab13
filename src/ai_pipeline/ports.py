"""Ports: what agents and the API need from the outside world, and nothing about how."""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any, Literal, Protocol

from ai_pipeline.domain.github import ActionRecord, IssueRecord, IssueRef
from ai_pipeline.domain.liveness import Heartbeat
from ai_pipeline.domain.models import BugReport, FiledIssue, IssueDraft
from ai_pipeline.domain.request_state import RequestState, RequestStatus, StateEvent
from ai_pipeline.domain.submissions import OPEN_SCOPE


@dataclass(frozen=True)
class OutgoingMessage:
    topic: str
    key: str
    value: bytes
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Message:
    topic: str
    partition: int
    offset: int
    key: str
    value: bytes
    headers: dict[str, str]
    timestamp: float


class Consumer(Protocol):
    """One member of a consumer group. Delivery is at-least-once."""

    async def fetch(self, max_records: int, timeout: float) -> list[Message]:
        """Messages past this member's position, in order per partition; [] on timeout."""
        ...

    async def commit(self, message: Message, outputs: Sequence[OutgoingMessage]) -> None:
        """Durably publish ``outputs``, then mark ``message`` consumed by the group."""
        ...

    async def rewind(self, message: Message) -> None:
        """Deliver ``message`` (and what follows it in its partition) again."""
        ...

    async def close(self) -> None: ...


class Bus(Protocol):
    published: Counter[str]  # messages published per topic, for the metrics

    async def start(self) -> None: ...

    async def close(self) -> None: ...

    async def publish(self, messages: Sequence[OutgoingMessage]) -> None:
        """Durably append; returns once every message is stored."""
        ...

    def consumer(self, group: str, topics: Sequence[str]) -> Consumer: ...

    async def lag(self) -> dict[tuple[str, str], int]:
        """Unconsumed messages per (group, topic)."""
        ...

    async def group_members(self, groups: Sequence[str]) -> dict[str, int | None]:
        """Live members per consumer group (None where the bus cannot tell)."""
        ...

    async def peek(self, topic: str, limit: int) -> list[Message]:
        """The newest ``limit`` messages of ``topic``, newest first, without consuming."""
        ...

    def replay(self, topic: str, batch: int = 500) -> AsyncIterator[list[Message]]:
        """Every message of ``topic`` still retained, up to its end when called, in order
        per partition, without moving any group's offsets (for rebuilding state)."""
        ...

    async def prune(self) -> int:
        """Drop consumed messages past retention; how many went."""
        ...

    async def ping(self) -> dict[str, Any]: ...


@dataclass(frozen=True)
class Page:
    requests: list[RequestState]
    total: int


@dataclass(frozen=True)
class FilingRecord:
    request_id: str
    # "pending" before the create call, "filed" after it, "refused" when the tracker
    # refused it (nothing was filed: a redrive creates at once, with nothing to look for).
    state: str
    issue: FiledIssue | None
    # A pending entry's lease: the tracker process that may create for the request, and
    # until when (Unix time, the store's clock). Nobody else creates while it holds.
    owner: str | None = None
    lease_until: float | None = None
    # When the last create call began (the store's clock); None: no call is known (an
    # entry restored by a rebuild). GitHub lists a new issue only after a lag, so for a
    # while after it an unlisted issue may still exist.
    attempted_at: float | None = None
    # When the entry was first seen pending (the store's clock).
    pending_since: float | None = None


@dataclass(frozen=True)
class FilingClaim:
    """The answer to ``StateStore.claim_filing``."""

    granted: bool
    # The entry before the claim: None if there was none; the filed one, or the other
    # owner's pending one, when not granted.
    previous: FilingRecord | None
    now: float  # the store's clock when it decided

    @property
    def wait_seconds(self) -> float:
        """How long until another owner's lease ends (0 when granted or filed)."""
        lease = self.previous.lease_until if self.previous is not None else None
        return 0.0 if self.granted or lease is None else max(0.0, lease - self.now)


@dataclass
class RequestStats:
    total: int = 0
    completed: int = 0
    failed: int = 0
    # Samples (newest first, at most the store's sample limit) for percentiles.
    processing_seconds: list[float] = field(default_factory=list)
    step_seconds: dict[str, list[float]] = field(default_factory=dict)
    step_failures: dict[str, int] = field(default_factory=dict)

    @property
    def active(self) -> int:
        return self.total - self.completed - self.failed


class StateStore(Protocol):
    # True when ``create_request`` commits its outbox in the same transaction as the
    # request: then a recorded request's first messages can never have been lost.
    publishes_outbox_atomically: bool
    operations: Counter[str]  # calls per "backend|operation", for the metrics

    async def start(self) -> None: ...

    async def close(self) -> None: ...

    async def create_request(
        self,
        state: RequestState,
        report: BugReport,
        idempotency_key: str | None,
        outbox: Sequence[OutgoingMessage] = (),
        submitter: str = OPEN_SCOPE,
    ) -> tuple[RequestState, bool]:
        """Insert unless ``submitter``'s scope knows the bug report id or idempotency key
        (``domain.submissions``); (state, created). A known one with the same report gives
        the existing request (a request whose record expired while its lookup lives: its
        id and last known status, the rest blank); with another report, ``IdConflict``.

        ``outbox`` is published only when the request is created: in the same transaction
        where the bus shares the store's database, right after the insert otherwise.
        """
        ...

    async def put_report(
        self,
        request_id: str,
        report: BugReport,
        idempotency_key: str | None,
        submitter: str = OPEN_SCOPE,
    ) -> bool:
        """Restore a known request's report (and its id and key lookups in ``submitter``'s
        scope, unless another request holds them) when it has none, as a rebuild from the
        log does; whether anything was written."""
        ...

    async def expire_lookups(self) -> int:
        """Forget id and idempotency-key lookups whose request ended more than the lookup
        lifetime ago (where the store does not expire them itself); how many."""
        ...

    async def get(self, request_id: str) -> RequestState | None: ...

    async def get_report(self, request_id: str) -> BugReport | None: ...

    async def apply(self, event: StateEvent) -> RequestState | None:
        """Fold ``event`` into the request atomically; the new state, or None if unchanged."""
        ...

    async def list_requests(
        self, statuses: Sequence[RequestStatus], limit: int, offset: int
    ) -> Page: ...

    async def stuck(self, older_than: datetime, limit: int) -> list[RequestState]:
        """Active requests not updated since ``older_than``, except those held for review
        (``RequestState.held_for_review``): they wait for a person, not an agent."""
        ...

    async def list_held(self, limit: int, offset: int) -> Page:
        """Requests held for review, oldest created first (the review queue)."""
        ...

    async def put_review_example(self, request_id: str, example: Mapping[str, Any]) -> None:
        """Keep a maintainer's correction as a labelled example (one per request: a later
        one replaces it); kept until deleted, not expired with the request."""
        ...

    async def review_examples(self) -> list[dict[str, Any]]:
        """Every stored example, oldest first."""
        ...

    async def recent_reports(self, limit: int) -> list[tuple[RequestState, BugReport]]:
        """Newest reports first, for seeding the duplicate index."""
        ...

    async def put_embedding(self, request_id: str, vector: bytes) -> None:
        """Keep a request's report embedding (float32 bytes) with it: a restarted triage agent
        seeds its index from these instead of embedding every recent report again."""
        ...

    async def embeddings(self, request_ids: Sequence[str]) -> dict[str, bytes]:
        """The stored embeddings of those requests that have one."""
        ...

    async def stats(
        self, since: datetime, sample_limit: int = 100_000, with_steps: bool = True
    ) -> RequestStats:
        """Aggregates over requests created since ``since``; per-step figures (costly)
        only ``with_steps``."""
        ...

    async def get_filing(self, request_id: str) -> FilingRecord | None: ...

    async def put_filing(self, record: FilingRecord) -> None:
        """Write ``record`` as it is (a ``filed`` entry ends any lease)."""
        ...

    async def claim_filing(
        self, request_id: str, owner: str, lease_seconds: float, attempt: bool
    ) -> FilingClaim:
        """Atomically take the lease on a request's pending ledger entry, creating it if
        there is none, unless the entry is filed or another owner's lease still runs.
        Granted, the entry is pending, ``owner``'s until ``lease_seconds`` from now, with
        ``pending_since`` kept (or now); ``attempted_at`` becomes now when ``attempt`` (a
        create call starts), else stays as it was."""
        ...

    async def put_heartbeats(self, beats: Sequence[Heartbeat], ttl_seconds: float) -> None:
        """Record these agents' heartbeats (one per agent and instance, the newest kept);
        each is forgotten ``ttl_seconds`` later (the store's clock) unless beaten again."""
        ...

    async def heartbeats(self) -> list[Heartbeat]:
        """The live heartbeats of every agent process that shares this store."""
        ...

    async def record_daily(self, day: date, figures: Mapping[str, float]) -> None:
        """Add ``figures`` to the counters of ``day`` (UTC), atomically; kept about 400 days."""
        ...

    async def daily(self, day: date) -> dict[str, float] | None:
        """The counters of ``day``, or None when nothing was recorded for it."""
        ...

    async def ping(self) -> dict[str, Any]: ...


@dataclass(frozen=True)
class OpenIssue:
    number: int
    url: str
    title: str
    occurrences: int  # comments the pipeline added to it, one per later duplicate report


@dataclass(frozen=True)
class TrackerIssue:
    """An issue as the tracker shows it now."""

    number: int
    url: str
    title: str
    state: str  # "open" or "closed"
    state_reason: str | None  # completed, not_planned, duplicate, reopened; None if unsaid
    labels: tuple[str, ...]
    author: str | None
    locked: bool
    assignees: tuple[str, ...] = ()


@dataclass(frozen=True)
class TrackerComment:
    id: int
    url: str
    body: str
    author: str | None
    created_at: datetime | None
    updated_at: datetime | None


class Tracker(Protocol):
    name: str
    # How long a created issue or comment may take to show in the tracker's lists: after
    # an unknown outcome, nothing is created again before this has passed unlisted.
    listing_lag_seconds: float

    async def create_issue(self, request_id: str, draft: IssueDraft) -> FiledIssue:
        """File ``draft``; the body already carries the request's hidden marker."""
        ...

    async def find_filed(self, request_id: str, since: datetime | None = None) -> FiledIssue | None:
        """An issue filed earlier for ``request_id`` (marker search), for unknown outcomes:
        one filed by this tracker's account and updated since ``since`` (None: unknown, the
        newest ones are searched)."""
        ...

    async def open_issue(self, number: int) -> OpenIssue | None:
        """Issue ``number`` if it exists and is open (not closed, not a pull request)."""
        ...

    async def add_comment(self, request_id: str, number: int, body: str) -> FiledIssue:
        """Comment ``body`` (it carries the request's marker) on issue ``number``."""
        ...

    async def find_comment(
        self, request_id: str, number: int, since: datetime | None = None
    ) -> FiledIssue | None:
        """A comment added earlier for ``request_id`` on issue ``number`` (marker search),
        among those since ``since`` (None: all of them)."""
        ...

    # Acting on an issue in place (GitHub App mode; closing the loop). Each is one call that
    # may be repeated safely: adding what is there, or removing what is gone, changes nothing.

    async def read_issue(self, number: int) -> TrackerIssue | None:
        """Issue ``number`` (open or closed); None if it is gone or is a pull request."""
        ...

    async def list_comments(
        self, number: int, since: datetime | None = None
    ) -> list[TrackerComment]:
        """Every comment on issue ``number`` (all pages), oldest first; with ``since``,
        those updated at or after it."""
        ...

    async def create_comment(self, number: int, body: str) -> TrackerComment: ...

    async def edit_comment(self, comment_id: int, body: str) -> TrackerComment | None:
        """The edited comment; None if it no longer exists (someone deleted it)."""
        ...

    async def add_labels(self, number: int, labels: Sequence[str]) -> list[str]:
        """Add ``labels`` (those missing from the repository are created first, as when
        filing); the issue's labels afterwards."""
        ...

    async def remove_label(self, number: int, label: str) -> None:
        """Remove ``label`` from the issue; nothing if it does not carry it."""
        ...

    async def add_assignees(self, number: int, logins: Sequence[str]) -> list[str]:
        """Add assignees, never replacing anyone's; the issue's assignees afterwards.
        (Adding rather than setting: a person assigned meanwhile is never displaced.)"""
        ...

    async def ping(self) -> dict[str, Any]: ...

    async def close(self) -> None: ...


PassStart = Literal["go", "acted", "busy"]


class GitHubStore(Protocol):
    """The GitHub App mode's records, beside the state store: what is known of each issue
    (``IssueRecord``), the ledger of what each pass did (``ActionRecord``), deliveries seen,
    and a short lease per issue so that one process at a time acts on it."""

    async def start(self) -> None: ...

    async def close(self) -> None: ...

    async def get_issue(self, issue: IssueRef) -> IssueRecord | None: ...

    async def update_issue(
        self, issue: IssueRef, change: Callable[[IssueRecord], IssueRecord]
    ) -> IssueRecord:
        """Apply ``change`` to the stored record (a new one if none) atomically: a change
        made meanwhile by another process is never lost (``change`` may run again)."""
        ...

    async def issues(self, repository: str) -> list[IssueRecord]:
        """Every record of ``repository``, by issue number."""
        ...

    async def get_action(self, issue: IssueRef, version: int) -> ActionRecord | None: ...

    async def begin_pass(
        self, action: ActionRecord, holder: str, lease_seconds: float
    ) -> tuple[PassStart, ActionRecord | None, IssueRecord | None]:
        """Start a pass over an issue, atomically: ("acted", its done entry, record) if this
        pass was done already; ("busy", None, None) while another holder's lease on the
        issue runs; else ("go", None, record), the lease taken for ``lease_seconds`` and
        ``action`` (``pending``) written."""
        ...

    async def end_pass(
        self, action: ActionRecord, change: Callable[[IssueRecord], IssueRecord], holder: str
    ) -> IssueRecord:
        """End a pass, atomically: ``action`` (``done``) written, ``change`` applied to the
        issue's record (as ``update_issue`` does), the lease released if ours."""
        ...

    async def lease(self, issue: IssueRef, holder: str, seconds: float) -> bool:
        """Hold ``issue`` for ``seconds`` unless another holder does; whether we hold it."""
        ...

    async def release(self, issue: IssueRef, holder: str) -> None: ...

    async def seen_delivery(self, delivery_id: str) -> bool: ...

    async def mark_delivery(self, delivery_id: str, event: str) -> None:
        """Remember a delivery (kept a week: GitHub offers redelivery for three days)."""
        ...

    async def ping(self) -> dict[str, Any]: ...


@dataclass(frozen=True)
class RateDecision:
    allowed: bool
    limit: int
    remaining: int
    reset_at: float  # Unix time the current window ends
    window_seconds: float


class RateLimiter(Protocol):
    """Fixed-window counters, shared by every API process that shares the store."""

    async def hit(self, bucket: str, limit: int, window_seconds: float) -> RateDecision:
        """Count one request in ``bucket`` and say whether it is within ``limit``."""
        ...


@dataclass(frozen=True)
class ApiKey:
    key_id: str  # public, shown in logs and lists (e.g. "k_3f9a1c2b")
    name: str
    scopes: frozenset[str]  # among "submit", "read", "admin"
    created_at: float
    revoked_at: float | None = None
    # Per-key limits per hour; None: the service defaults; 0: unlimited.
    submit_per_hour: int | None = None
    read_per_hour: int | None = None


class KeyStore(Protocol):
    """API keys, stored by id with only a hash of the secret."""

    async def add(self, key: ApiKey, secret_hash: str) -> None: ...

    async def by_hash(self, secret_hash: str) -> ApiKey | None: ...

    async def list(self) -> list[ApiKey]: ...

    async def revoke(self, key_id: str) -> bool: ...

    async def any_keys(self) -> bool:
        """Whether any key was ever created, revoked ones included: the API then stays
        closed, so revoking a leaked last key never opens it to everyone."""
        ...
