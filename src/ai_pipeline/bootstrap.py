"""The one place the service is assembled: settings in, wired adapters and agents out."""

from __future__ import annotations

import os
import socket
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from ai_pipeline import __version__
from ai_pipeline.adapters.bus.sqlite import SqliteBus
from ai_pipeline.adapters.keys.sqlite import SqliteKeyStore
from ai_pipeline.adapters.llm import ChatModel
from ai_pipeline.adapters.loop.sqlite import SqliteLoopStore
from ai_pipeline.adapters.notify.webhook import HttpWebhookSender
from ai_pipeline.adapters.rate_limits.memory import MemoryRateLimiter
from ai_pipeline.adapters.sqlite_db import SqliteDatabase, path_from_url
from ai_pipeline.adapters.state.sqlite import SqliteStateStore
from ai_pipeline.adapters.trackers.local import LocalTracker
from ai_pipeline.adapters.trackers.local_conversation import LocalConversationTracker
from ai_pipeline.agents.coordinator import Coordinator
from ai_pipeline.agents.delivery import DeliveryAgent, RetryPlan, Senders
from ai_pipeline.agents.in_place import InPlaceActor
from ai_pipeline.agents.notifier import NotifierAgent
from ai_pipeline.agents.priority import IngestPriority
from ai_pipeline.agents.replies import ReplyAgent
from ai_pipeline.agents.runner import AgentRunner, AgentSpec, RetryPolicy
from ai_pipeline.agents.ticket_creation import TicketCreationAgent
from ai_pipeline.agents.tracker import TrackerAgent
from ai_pipeline.agents.triage import TriageAgent
from ai_pipeline.domain.events import Step, Topic
from ai_pipeline.domain.follow_up import Policy
from ai_pipeline.domain.github import IssueRef
from ai_pipeline.domain.links import Links
from ai_pipeline.domain.redaction import Redactor
from ai_pipeline.drafting.drafter import IssueDrafter, TemplateDrafter
from ai_pipeline.drafting.github_comment import GitHubCommentDrafter, IssueState
from ai_pipeline.follow_ups import FollowUps
from ai_pipeline.loop_ports import ConversationTracker, LoopStore
from ai_pipeline.observability.metrics import Metrics
from ai_pipeline.ports import Bus, GitHubStore, KeyStore, RateLimiter, StateStore, Tracker
from ai_pipeline.settings import Settings
from ai_pipeline.triage.artifact import Artifact, load_artifact
from ai_pipeline.triage.duplicates import DuplicateIndex
from ai_pipeline.triage.embeddings import DEFAULT_MAX_TOKENS, Embedder
from ai_pipeline.triage.engine import TriageEngine
from ai_pipeline.triage.local import LocalTriageEngine, embedding_max_tokens
from ai_pipeline.triage.routing import Router

if TYPE_CHECKING:
    from ai_pipeline.adapters.trackers.github_wiring import GitHubConnection

# Every agent: its consumer group, the topic it reads, and the request step it performs.
AGENTS: dict[str, tuple[str, Topic, Step | None]] = {
    "coordinator_agent": ("coordinator-agent-group", Topic.STATUS_UPDATES, None),
    "triage_agent": ("triage-agent-group", Topic.BUG_REPORTS, Step.TRIAGE),
    "ticket_creation_agent": (
        "ticket-creation-agent-group",
        Topic.TRIAGE_RESULTS,
        Step.TICKET_CREATION,
    ),
    "github_api_agent": ("github-api-agent-group", Topic.TICKET_CREATION, Step.GITHUB),
    # Closing the loop with the reporter: no request step of their own.
    "notifier_agent": ("notifier-agent-group", Topic.STATUS_UPDATES, None),
    "delivery_agent": ("delivery-agent-group", Topic.NOTIFICATIONS, None),
    "reply_agent": ("reply-agent-group", Topic.REPLIES, None),
}


@dataclass
class LoopParts:
    """Closing the loop with the reporter: conversations, notifications, replies and
    follow-up (README "The reporter hears back")."""

    store: LoopStore
    links: Links
    notifier: NotifierAgent
    delivery: DeliveryAgent
    replies: ReplyAgent
    follow_ups: FollowUps
    # The local tracker's issue life (close, reopen, labels, timeline), when it runs.
    local: LocalConversationTracker | None
    # Clients it opened (Redis, HTTP), closed with the service.
    closers: list[Callable[[], Awaitable[None]]]


@dataclass
class Container:
    settings: Settings
    # This process, as its heartbeats and filing leases name it.
    instance: str
    metrics: Metrics
    bus: Bus
    store: StateStore
    tracker: Tracker
    local_tracker: LocalTracker | None
    triage_agent: TriageAgent
    coordinator: Coordinator
    ingest_priority: IngestPriority
    keys: KeyStore
    limiter: RateLimiter
    loop: LoopParts
    runners: list[AgentRunner] = field(default_factory=list)
    databases: list[SqliteDatabase] = field(default_factory=list)
    # Called once on shutdown (after the agents stop): clients of optional adapters (LLM).
    close_hooks: list[Callable[[], Awaitable[None]]] = field(default_factory=list)
    chat: ChatModel | None = None
    # Where security-sensitive reports go when it is not the local tracker (a private repo).
    private_tracker: Tracker | None = None
    # The GitHub App mode's records (issues, the ledger of passes, deliveries), when its
    # webhook secret is set: the webhook route exists only then.
    github_store: GitHubStore | None = None


def bootstrap(
    settings: Settings,
    *,
    metrics: Metrics | None = None,
    tracker: Tracker | None = None,
    engine: TriageEngine | None = None,
    in_place_trackers: Mapping[str, Tracker] | None = None,
) -> Container:
    """``in_place_trackers``: the trackers of the repositories triaged in place (GitHub App
    mode), by owner/name, instead of GitHub trackers built from the settings (tests)."""
    metrics = metrics or Metrics()
    priority = IngestPriority(share=settings.agent_share_under_load)
    databases: dict[Path, SqliteDatabase] = {}

    def sqlite(url: str) -> SqliteDatabase:
        path = path_from_url(url).resolve()
        if path not in databases:
            databases[path] = SqliteDatabase(
                path,
                synchronous=settings.sqlite_synchronous,
                quiet=lambda: not priority.api_busy,
            )
        return databases[path]

    bus = _bus(settings, sqlite)
    store = _store(settings, bus, sqlite)
    keys, limiter, close_access = _access(settings, sqlite)
    local_tracker = None
    private_tracker: Tracker | None = None
    tracker_db = settings.state if _is_sqlite(settings.state) else settings.local_tracker_db
    connection = _github_connection(settings, metrics, in_place_trackers is not None)
    if tracker is None:
        tracker, local_tracker, private_tracker = _trackers(
            settings, sqlite(tracker_db), metrics, connection
        )
    elif isinstance(tracker, LocalTracker):
        local_tracker = tracker
    artifact = load_artifact(
        Path(settings.triage_model_path) if settings.triage_model_path else None
    )
    chat = _chat_model(settings, metrics)
    # One embedder per process, shared by duplicate search and the engine's models, with
    # the token budget the shipped models were trained on.
    embedder = Embedder(
        Path(settings.embedding_model_dir) if settings.embedding_model_dir else None,
        max_tokens=embedding_max_tokens(artifact) or DEFAULT_MAX_TOKENS,
        threads=settings.embedding_threads,
    )
    engine = engine or _engine(settings, artifact, chat, metrics, embedder)
    index = DuplicateIndex.from_artifact(artifact, capacity=max(settings.duplicate_index_size, 1))
    router = Router.load(Path(settings.routing_file)) if settings.routing_file else None
    triage = TriageAgent(
        engine, index, store, metrics, router, embedder, settings.report_cpu_budget_seconds
    )
    coordinator = Coordinator(store, bus, metrics, settings.step_timeout_seconds)
    private = settings.security_reports == "private"
    if private and private_tracker is None and local_tracker is None:
        private_tracker = local_tracker = LocalTracker(sqlite(tracker_db), settings.base_url)
    close_hooks: list[Callable[[], Awaitable[None]]] = [chat.close] if chat else []
    if close_access is not None:
        close_hooks.append(close_access)
    if private_tracker is not None and private_tracker is not local_tracker:
        close_hooks.append(private_tracker.close)
    instance = process_instance()
    github_store, in_place = _in_place(
        settings, metrics, sqlite, connection, tracker, in_place_trackers
    )
    if github_store is not None:
        close_hooks.append(github_store.close)
    if in_place is not None:
        close_hooks += [t.close for t in in_place.trackers.values() if t is not tracker]
    tracker_agent = TrackerAgent(
        tracker,
        store,
        metrics,
        private_tracker,
        duplicates=settings.duplicate_mode,
        in_place=in_place,
        owner=instance,
        lease_seconds=settings.filing_lease_seconds,
    )
    filing_repository = settings.github_repository if settings.tracker == "github" else None
    ticket_agent = TicketCreationAgent(
        Redactor.from_setting(settings.redact),
        _drafter(settings, chat, metrics),
        settings.hold_policy(),
        GitHubCommentDrafter(_issue_state(github_store), filing_repository),
        filing_repository,
        settings.report_cpu_budget_seconds,
    )
    retry = RetryPolicy(
        max_attempts=settings.max_attempts,
        base_delay=settings.retry_base_seconds,
        max_delay=settings.retry_max_seconds,
    )
    handlers = {
        "coordinator_agent": coordinator.handle,
        "triage_agent": triage.handle,
        "ticket_creation_agent": ticket_agent.handle,
        "github_api_agent": tracker_agent.handle,
    }
    loop = _loop(settings, sqlite, bus, store, metrics, tracker, private_tracker, local_tracker)
    close_hooks += loop.closers
    handlers.update(
        {
            "notifier_agent": loop.notifier.handle,
            "delivery_agent": loop.delivery.handle,
            "reply_agent": loop.replies.handle,
        }
    )
    specs = [
        AgentSpec(name, group, topic, handlers[name], step)
        for name, (group, topic, step) in AGENTS.items()
    ]
    runners = [
        AgentRunner(spec, bus, metrics, retry, settings.fetch_max_records, priority=priority)
        for spec in specs
    ]
    _watch_adapters(metrics, store.operations, bus.published, list(databases.values()))
    metrics.build_info.info(
        {
            "version": __version__,
            "bus": settings.bus.split(":", 1)[0],
            "state": settings.state.split(":", 1)[0],
            "tracker": tracker.name,
            "triage_engine": engine.name,
        }
    )
    return Container(
        settings=settings,
        instance=instance,
        metrics=metrics,
        bus=bus,
        store=store,
        tracker=tracker,
        local_tracker=local_tracker,
        triage_agent=triage,
        coordinator=coordinator,
        ingest_priority=priority,
        keys=keys,
        limiter=limiter,
        runners=runners,
        databases=list(databases.values()),
        close_hooks=close_hooks,
        private_tracker=private_tracker if private_tracker is not local_tracker else None,
        chat=chat,
        loop=loop,
        github_store=github_store,
    )


def _loop(
    settings: Settings,
    sqlite: Callable[[str], SqliteDatabase],
    bus: Bus,
    store: StateStore,
    metrics: Metrics,
    tracker: Tracker,
    private_tracker: Tracker | None,
    local_tracker: LocalTracker | None,
) -> LoopParts:
    loop_store: LoopStore
    closers: list[Callable[[], Awaitable[None]]] = []
    if _is_sqlite(settings.state):
        loop_store = SqliteLoopStore(sqlite(settings.state))
    elif is_redis(settings.state):
        from ai_pipeline.adapters.loop.redis import RedisLoopStore
        from ai_pipeline.adapters.redis_client import connect

        loop_store = RedisLoopStore(connect(settings.state, 16), settings.redis_key_prefix)
        closers.append(loop_store.close)
    else:
        raise _unknown_state(settings)
    secret = settings.signing_secret

    async def signing_key() -> bytes:
        if secret is not None:
            return secret.get_secret_value().encode()
        return await loop_store.signing_key()

    links = Links(settings.base_url, signing_key)
    trackers = {t.name: t for t in (tracker, private_tracker, local_tracker) if t is not None}
    local = LocalConversationTracker(local_tracker) if local_tracker is not None else None
    acting: dict[str, ConversationTracker] = {local.name: local} if local else {}
    delivery = DeliveryAgent(
        loop_store, bus, _senders(settings, closers), links, metrics, _retry_plan(settings)
    )
    redactor = Redactor.from_setting(settings.redact)
    policy = Policy.from_days(
        settings.needs_info_remind_days,
        settings.needs_info_close_days,
        settings.needs_info_exempt_labels,
    )

    return LoopParts(
        store=loop_store,
        links=links,
        notifier=NotifierAgent(store, loop_store, metrics),
        delivery=delivery,
        replies=ReplyAgent(loop_store, trackers, acting, redactor, metrics),
        follow_ups=FollowUps(loop_store, bus, store, trackers, acting, policy, metrics),
        local=local,
        closers=closers,
    )


def _senders(settings: Settings, closers: list[Callable[[], Awaitable[None]]]) -> Senders:
    webhooks = None
    secret = settings.notify_webhook_secret
    if secret is not None:
        webhooks = HttpWebhookSender(
            settings.notify_webhook_timeout_seconds, settings.notify_webhook_allow_private
        )
        closers.append(webhooks.close)
    mailer = None
    if settings.smtp_url:
        from ai_pipeline.adapters.notify.smtp import SmtpMailer

        password = settings.smtp_password
        mailer = SmtpMailer(
            settings.smtp_url,
            username=settings.smtp_username,
            password=password.get_secret_value() if password else None,
            ca_file=settings.smtp_ca_file,
            timeout=settings.smtp_timeout_seconds,
        )
    return Senders(
        webhooks=webhooks,
        webhook_secret=secret.get_secret_value().encode() if secret else None,
        mailer=mailer,
        mail_from=settings.smtp_from or "",
    )


def _retry_plan(settings: Settings) -> RetryPlan:
    timeout = max(settings.notify_webhook_timeout_seconds, settings.smtp_timeout_seconds)
    return RetryPlan(
        first_retry=timedelta(seconds=settings.notify_first_retry_seconds),
        max_retry=timedelta(seconds=settings.notify_max_retry_seconds),
        give_up_after=timedelta(hours=settings.notify_retry_hours),
        # Longer than any one try takes, so a live try is never taken over.
        lease=timedelta(seconds=2 * timeout + 5),
    )


def process_instance() -> str:
    """A name for this process among all that share the store: host, pid, random part."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


def _watch_adapters(
    metrics: Metrics,
    operations: Counter[str],
    published: Counter[str],
    databases: list[SqliteDatabase],
) -> None:
    """Expose the adapters' own tallies as Prometheus counters."""
    metrics.watch_tally(
        "ai_pipeline_state_operations",
        "State-store operations.",
        ["backend", "operation"],
        lambda: operations,
    )
    metrics.watch_tally(
        "ai_pipeline_bus_messages_published",
        "Messages published, by topic.",
        ["topic"],
        lambda: published,
    )
    for name, doc, attribute in (
        ("commits", "Group commits of the embedded database.", "commits"),
        ("writes", "Writes folded into group commits (per commit: writes / commits).", "writes"),
        ("wal_rewinds", "Checkpoints that rewound the write-ahead log.", "wal_restarts"),
    ):
        metrics.watch_tally(
            f"ai_pipeline_sqlite_{name}",
            doc,
            ["file"],
            lambda attribute=attribute: Counter(  # type: ignore[misc]
                {str(db.path): getattr(db, attribute) for db in databases}
            ),
        )


def _is_sqlite(url: str) -> bool:
    return url.startswith("sqlite:")


def is_redis(url: str) -> bool:
    return url.startswith(("redis://", "rediss://", "unix://"))


def _unknown_state(settings: Settings) -> ValueError:
    return ValueError(f"AI_PIPELINE_STATE must be sqlite:///… or redis://…, not {settings.state!r}")


def _bus(settings: Settings, sqlite: Callable[[str], SqliteDatabase]) -> Bus:
    if _is_sqlite(settings.bus):
        return SqliteBus(
            sqlite(settings.bus), settings.partitions(), settings.bus_retention_seconds
        )
    if settings.bus.startswith("kafka://"):
        from ai_pipeline.adapters.bus.kafka import KafkaBus, KafkaOptions

        options = KafkaOptions(
            fetch_min_bytes=settings.kafka_fetch_min_bytes,
            fetch_max_wait_ms=settings.kafka_fetch_max_wait_ms,
            session_timeout_ms=settings.kafka_session_timeout_ms,
            max_poll_interval_ms=settings.kafka_max_poll_interval_ms,
            linger_ms=settings.kafka_linger_ms,
            delivery_timeout_ms=settings.kafka_delivery_timeout_ms,
            metadata_refresh_ms=settings.kafka_metadata_refresh_ms,
            replication_factor=settings.kafka_replication_factor,
            retention_ms=int(settings.bus_retention_seconds * 1000),
            topic_prefix=settings.kafka_topic_prefix,
            extra=settings.kafka_config,
        )
        groups = {group: [topic.value] for group, topic, _step in AGENTS.values()}
        return KafkaBus(settings.bus, settings.partitions(), groups, options)
    raise ValueError(f"AI_PIPELINE_BUS must be sqlite:///… or kafka://…, not {settings.bus!r}")


def _store(settings: Settings, bus: Bus, sqlite: Callable[[str], SqliteDatabase]) -> StateStore:
    if _is_sqlite(settings.state):
        db = sqlite(settings.state)
        same_file = bus if isinstance(bus, SqliteBus) and bus.db is db else None
        return SqliteStateStore(
            db, bus, same_file_bus=same_file, lookup_ttl_seconds=settings.idempotency_ttl_seconds
        )
    if is_redis(settings.state):
        from ai_pipeline.adapters.state.redis import RedisStateStore

        return RedisStateStore(
            settings.state,
            bus=bus,
            terminal_ttl_seconds=settings.state_ttl_seconds,
            filing_ttl_seconds=settings.bus_retention_seconds,
            lookup_ttl_seconds=settings.idempotency_ttl_seconds,
            key_prefix=settings.redis_key_prefix,
        )
    raise _unknown_state(settings)


def _access(
    settings: Settings, sqlite: Callable[[str], SqliteDatabase]
) -> tuple[KeyStore, RateLimiter, Callable[[], Awaitable[None]] | None]:
    """API keys where the state lives, and the rate limiter beside them: in this process
    with SQLite (one API process), in Redis otherwise so API replicas share their counts.
    The third value closes the Redis client (the SQLite file closes with the state)."""
    if _is_sqlite(settings.state):
        return SqliteKeyStore(sqlite(settings.state)), MemoryRateLimiter(), None
    if not is_redis(settings.state):
        raise _unknown_state(settings)
    from ai_pipeline.adapters.keys.redis import RedisKeyStore
    from ai_pipeline.adapters.rate_limits.redis import RedisRateLimiter
    from ai_pipeline.adapters.redis_client import connect

    # A small pool of its own: one lookup per request at most, and the cache absorbs most.
    redis = connect(settings.state, max_connections=16)
    prefix = settings.redis_key_prefix
    return RedisKeyStore(redis, prefix), RedisRateLimiter(redis, prefix), redis.aclose


@asynccontextmanager
async def started(settings: Settings) -> AsyncIterator[Container]:
    """The configured service's bus and stores, started, no agent running: for the
    command line's tools (state rebuild, follow-up)."""
    c = bootstrap(settings)
    await c.bus.start()
    await c.store.start()
    await c.loop.store.start()
    try:
        yield c
    finally:
        await c.bus.close()
        await c.store.close()
        for close in c.loop.closers:
            await close()
        for db in c.databases:
            await db.close()


@asynccontextmanager
async def key_store(settings: Settings) -> AsyncIterator[KeyStore]:
    """The configured key store alone, started, for the command line."""
    database: SqliteDatabase | None = None

    def sqlite(url: str) -> SqliteDatabase:
        nonlocal database
        database = SqliteDatabase(path_from_url(url), synchronous=settings.sqlite_synchronous)
        return database

    keys, _limiter, close = _access(settings, sqlite)
    if database is not None:
        await database.start()
    try:
        yield keys
    finally:
        if database is not None:
            await database.close()
        if close is not None:
            await close()


def _github_connection(
    settings: Settings, metrics: Metrics, in_place_given: bool
) -> GitHubConnection | None:
    """GitHub's credentials and rate gate, shared by every GitHub tracker, when one is used."""
    in_place = settings.github_webhook_secret is not None and not in_place_given
    if settings.tracker != "github" and not in_place:
        return None
    from ai_pipeline.adapters.trackers.github_wiring import GitHubConnection

    return GitHubConnection(settings, metrics)


def _trackers(
    settings: Settings, db: SqliteDatabase, metrics: Metrics, connection: GitHubConnection | None
) -> tuple[Tracker, LocalTracker | None, Tracker | None]:
    """The tracker, the local tracker if one runs, and a private GitHub tracker if set."""
    if settings.tracker == "github":
        from ai_pipeline.adapters.trackers.github_wiring import github_trackers

        public, private = github_trackers(settings, metrics, connection)
        return public, None, private
    local = LocalTracker(db, settings.base_url)
    return local, local, None


def _in_place(
    settings: Settings,
    metrics: Metrics,
    sqlite: Callable[[str], SqliteDatabase],
    connection: GitHubConnection | None,
    filing: Tracker,
    trackers: Mapping[str, Tracker] | None,
) -> tuple[GitHubStore | None, InPlaceActor | None]:
    """The GitHub App mode's store and actor, when its webhook secret is set."""
    if settings.github_webhook_secret is None:
        return None, None
    store: GitHubStore
    if _is_sqlite(settings.state):
        from ai_pipeline.adapters.state.github_sqlite import SqliteGitHubStore

        store = SqliteGitHubStore(sqlite(settings.state))
    elif is_redis(settings.state):
        from ai_pipeline.adapters.state.github_redis import RedisGitHubStore

        store = RedisGitHubStore(settings.state, settings.redis_key_prefix)
    else:
        raise _unknown_state(settings)
    if trackers is None:
        from ai_pipeline.adapters.trackers.github import GitHubTracker
        from ai_pipeline.adapters.trackers.github_wiring import repository_trackers

        assert connection is not None  # made whenever the webhook secret is set
        trackers = repository_trackers(
            settings, connection, filing if isinstance(filing, GitHubTracker) else None
        )
    # A pass holds its issue at most this long: GitHub's longest wait in place, twice.
    lease = 2 * settings.github_max_wait_seconds + 30
    return store, InPlaceActor(trackers, store, metrics, settings.github_triage_mode, lease)


def _issue_state(store: GitHubStore | None) -> IssueState | None:
    """An issue's state as the webhooks last told it (open duplicates are listed first)."""
    if store is None:
        return None
    known = store

    async def state_of(issue: IssueRef) -> str | None:
        record = await known.get_issue(issue)
        return record.state if record is not None else None

    return state_of


def _engine(
    settings: Settings,
    artifact: Artifact,
    chat: ChatModel | None,
    metrics: Metrics,
    embedder: Embedder,
) -> TriageEngine:
    local = LocalTriageEngine(artifact, embedder, settings.triage_targets())
    if settings.triage_engine == "llm" and chat is not None:
        from ai_pipeline.triage.llm import LlmTriageEngine, allowed_from_settings

        allowed = allowed_from_settings(settings.llm_allowed_labels, settings.llm_allowed_assignees)
        redactor = Redactor.from_setting(settings.redact)
        send_security = settings.llm_security_reports == "allow"
        return LlmTriageEngine(local, chat, allowed, metrics, redactor, send_security)
    return local


def _chat_model(settings: Settings, metrics: Metrics) -> ChatModel | None:
    """The LLM client, when the triage engine or the drafter uses one (one budget for both)."""
    if settings.triage_engine != "llm" and not settings.llm_draft_issues:
        return None
    if not settings.llm_base_url or not settings.llm_model:
        raise ValueError(
            "AI_PIPELINE_TRIAGE_ENGINE=llm and AI_PIPELINE_LLM_DRAFT_ISSUES need"
            " AI_PIPELINE_LLM_BASE_URL and AI_PIPELINE_LLM_MODEL"
        )
    from ai_pipeline.adapters.llm import LlmOptions, OpenAIChat, TokenBudget

    budget = TokenBudget(settings.llm_daily_token_budget)
    metrics.llm_budget_remaining.set_function(budget.remaining)
    options = LlmOptions(
        model=settings.llm_model,
        timeout_seconds=settings.llm_timeout_seconds,
        max_retries=settings.llm_max_retries,
        max_tokens=settings.llm_max_tokens,
    )
    key = settings.llm_api_key.get_secret_value() if settings.llm_api_key else None
    return OpenAIChat(settings.llm_base_url, key, options, metrics, budget)


def _drafter(settings: Settings, chat: ChatModel | None, metrics: Metrics) -> IssueDrafter:
    if settings.llm_draft_issues and chat is not None:
        from ai_pipeline.drafting.llm_draft import LlmDrafter

        return LlmDrafter(chat, metrics, settings.llm_security_reports == "allow")
    return TemplateDrafter()
