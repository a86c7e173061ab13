"""Settings: ``AI_PIPELINE_*`` environment variables (a ``.env`` file is honoured)."""

from __future__ import annotations

import json
import os
from typing import Annotated, Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from ai_pipeline.domain.events import Topic
from ai_pipeline.domain.review import HoldPolicy
from ai_pipeline.triage.targets import (
    DEFAULT_MIN_PRECISION,
    DEFAULT_MIN_PRECISION_SECURITY,
    DEFAULT_SECURITY_REVIEW_RECALL,
    TriageTargets,
)

DEFAULT_PARTITIONS = {
    Topic.BUG_REPORTS.value: 6,
    Topic.TRIAGE_RESULTS.value: 3,
    Topic.TICKET_CREATION.value: 3,
    Topic.STATUS_UPDATES.value: 3,
    Topic.NOTIFICATIONS.value: 3,
    Topic.REPLIES.value: 3,
}


def _owner_slash_name(value: str) -> str:
    if value.count("/") != 1 or value.startswith("/") or value.endswith("/"):
        raise ValueError("must be owner/name")
    return value


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="AI_PIPELINE_", env_file=".env", extra="ignore", frozen=True
    )

    # Where things run.
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=0, le=65535)
    # An agent process's /health and /metrics (``ai-pipeline agent …``).
    health_port: int = Field(default=8081, ge=0, le=65535)
    public_url: str | None = None  # how users reach the service; defaults to host:port
    bus: str = "sqlite:///data/ai-pipeline.db"
    state: str = "sqlite:///data/ai-pipeline.db"
    sqlite_synchronous: Literal["OFF", "NORMAL", "FULL", "EXTRA"] = "NORMAL"

    # Kafka (AI_PIPELINE_BUS=kafka://host:port,…): the client settings the runbook tunes.
    kafka_topic_prefix: str = ""  # lets tenants (and tests) share a cluster
    # Batching measured on the 2-core box: 8 KiB / 50 ms / 10 ms linger cut the broker's
    # CPU per report by a third and raised saturated throughput about 25 %, for at most
    # 60 ms more per hop when traffic is light.
    kafka_fetch_min_bytes: int = Field(default=8192, ge=1)
    kafka_fetch_max_wait_ms: int = Field(default=50, ge=0)
    kafka_session_timeout_ms: int = Field(default=10_000, ge=1000)
    kafka_max_poll_interval_ms: int = Field(default=300_000, ge=1000)
    kafka_linger_ms: float = Field(default=10.0, ge=0)
    kafka_delivery_timeout_ms: int = Field(default=120_000, ge=1000)
    kafka_metadata_refresh_ms: int = Field(default=30_000, ge=1000)
    kafka_replication_factor: int = Field(default=1, ge=1)
    # Anything else librdkafka accepts (TLS, SASL…), as a JSON object of strings.
    kafka_config: dict[str, str] = Field(default_factory=dict)

    # Redis (AI_PIPELINE_STATE=redis://host:port/db).
    redis_key_prefix: str = ""
    # A finished request's record lives this long (the status-updates log outlives it).
    state_ttl_seconds: float = Field(default=24 * 3600, gt=0)
    # A report's id and Idempotency-Key are recognised while their request is in flight and
    # this long after it ended, in either store, whatever the record's own lifetime: a
    # resubmission within it never files a second issue.
    idempotency_ttl_seconds: float = Field(default=30 * 86400, gt=0)
    # The local tracker's issues when the state is not in SQLite (one file per deployment).
    local_tracker_db: str = "sqlite:///data/local-tracker.db"

    # Tracker.
    tracker: Literal["local", "github"] = "local"
    github_token: SecretStr | None = None
    github_repository: str | None = None
    github_api_url: str = "https://api.github.com"
    github_timeout_seconds: float = Field(default=10.0, gt=0)
    # As a GitHub App instead of a token: its id, installation and private key (the PEM
    # itself, or a file holding it, e.g. a mounted secret). Installation tokens are fetched
    # and refreshed five minutes before they expire.
    github_app_id: int | None = Field(default=None, ge=1)
    github_app_installation_id: int | None = Field(default=None, ge=1)
    github_app_private_key: SecretStr | None = None
    github_app_private_key_file: str | None = None
    # Labels the repository lacks: "create" them (with a colour and a description) or file
    # the issue with "existing" labels only.
    github_labels: Literal["create", "existing"] = "create"
    github_milestone: int | None = Field(default=None, ge=1)  # by number; sent while open
    # Security-sensitive reports go here when set (it must be a private repository);
    # otherwise to the built-in local tracker.
    github_private_repository: str | None = None
    # GitHub's content-creation pacing, per process (give each tracker process its share).
    github_creations_per_minute: int = Field(default=80, ge=1)
    github_creations_per_hour: int = Field(default=500, ge=1)
    # Longer rate-limit waits hand the message back to the bus instead of holding it.
    github_max_wait_seconds: float = Field(default=60.0, gt=0)
    # GitHub's read-after-write lag: after a create (or comment) whose outcome is unknown,
    # the issues are searched again, with backoff, for this long before creating again.
    github_listing_lag_seconds: float = Field(default=30.0, ge=0)
    # How long one tracker process may hold a request's pending ledger entry (its create
    # call is cut short before): no other process creates for that request meanwhile.
    filing_lease_seconds: float = Field(default=120.0, gt=0)
    # Security-sensitive reports: "private" files them on the private tracker (the GitHub
    # private repository above, or the built-in local tracker, flagged `security`) instead
    # of the public one; "public" files them like any other report.
    security_reports: Literal["private", "public"] = "private"
    # A report triage matched to an open issue: "link" files its own issue naming the
    # original; "comment" adds it to the original as a comment. Nothing is ever closed.
    duplicate_mode: Literal["link", "comment"] = "link"
    # Triaged reports that wait in the review queue (web console, /api/v1/reviews) for a
    # maintainer to correct and release: a comma list of "needs-triage" (a field triage was
    # unsure of) and "security" (security-sensitive). Empty: nothing waits.
    review_hold: str = ""

    # GitHub App mode (``ai_pipeline.intake.github``): issues opened on GitHub are triaged in
    # place. The webhook route exists only while a secret is set; the repositories acted on
    # default to the filing repository; "suggest" posts the comment only, "apply" also applies
    # the labels and assignee. Credentials (token or App) and API URL are the tracker's.
    github_webhook_secret: SecretStr | None = None
    github_repositories: Annotated[list[str], NoDecode] = Field(default_factory=list)
    github_triage_mode: Literal["suggest", "apply"] = "suggest"

    # Triage.
    triage_engine: Literal["local", "llm"] = "local"
    triage_model_path: str | None = None  # a trained artifact directory; default: shipped
    # A field acts (label, duplicate_of, private filing) only where it was right at least
    # this often on held-out data (triage.targets); per-field settings override it.
    triage_min_precision: float = Field(default=DEFAULT_MIN_PRECISION, gt=0, le=1)
    triage_min_precision_type: float | None = Field(default=None, gt=0, le=1)
    triage_min_precision_priority: float | None = Field(default=None, gt=0, le=1)
    triage_min_precision_severity: float | None = Field(default=None, gt=0, le=1)
    triage_min_precision_duplicate: float | None = Field(default=None, gt=0, le=1)
    triage_min_precision_security: float = Field(default=DEFAULT_MIN_PRECISION_SECURITY, gt=0, le=1)
    # The security review band reaches down to the score that caught this share of the
    # training projects' security reports (with the private band).
    triage_security_review_recall: float = Field(default=DEFAULT_SECURITY_REVIEW_RECALL, gt=0, le=1)
    # Earlier reports searched for duplicates: the newest are loaded at start, and the
    # index drops its oldest past twice this, so memory stays bounded.
    duplicate_index_size: int = Field(default=50_000, ge=0)
    # Sentence embeddings (duplicate search, type and security models): the int8
    # all-MiniLM-L6-v2 shipped as a package by default, or a directory with model.onnx and
    # tokenizer.json; threads per process (agents scale by process, so one by default).
    embedding_model_dir: str | None = None
    embedding_threads: int = Field(default=1, ge=1)
    # CODEOWNERS-style routing rules (see ai_pipeline.triage.routing); none by default.
    routing_file: str | None = None
    llm_base_url: str | None = None
    llm_api_key: SecretStr | None = None
    llm_model: str | None = None
    # The LLM engine (AI_PIPELINE_TRIAGE_ENGINE=llm; see ai_pipeline.triage.llm). Lists take
    # JSON (`["a", "b"]`) or comma-separated values.
    llm_timeout_seconds: float = Field(default=20.0, gt=0)  # one attempt, hard deadline
    llm_max_retries: int = Field(default=2, ge=0, le=5)  # on timeouts, 429 and 5xx, jittered
    llm_max_tokens: int = Field(default=300, ge=16)  # completion tokens per call
    # Prompt + completion tokens per UTC day and process; then the local engine until
    # midnight UTC. Kept in memory: a restart starts the day afresh. 0: no LLM call at all.
    llm_daily_token_budget: int = Field(default=1_000_000, ge=0)
    # Labels the repository accepts; empty: every label the local engine can produce.
    # Labels beyond those (e.g. "regression") are extras the LLM may add.
    llm_allowed_labels: Annotated[list[str], NoDecode] = Field(default_factory=list)
    # GitHub logins the LLM may suggest as assignee; empty: it suggests no one.
    llm_allowed_assignees: Annotated[list[str], NoDecode] = Field(default_factory=list)
    # The same LLM writes each issue's title and an overview paragraph (template otherwise).
    llm_draft_issues: bool = False
    # Reports the local engine finds security-sensitive: "deny" keeps them from the LLM
    # (triage stays local's, the issue the template's); "allow" sends them like the others.
    llm_security_reports: Literal["deny", "allow"] = "deny"

    # Delivery.
    max_attempts: int = Field(default=5, ge=1)
    retry_base_seconds: float = Field(default=0.2, gt=0)
    retry_max_seconds: float = Field(default=30.0, gt=0)
    # A request whose step makes no progress this long while its agents live and wait on
    # nothing ends failed (domain.liveness).
    step_timeout_seconds: float = Field(default=300.0, gt=0)
    # Worker time one report's text may take in an agent (rules, embedding, redaction,
    # rendering); a report over it is dead-lettered with the reason (agents/offload.py).
    report_cpu_budget_seconds: float = Field(default=10.0, gt=0)
    sweep_interval_seconds: float = Field(default=10.0, gt=0)
    # Each process writes its agents' heartbeats this often; they live three intervals.
    heartbeat_interval_seconds: float = Field(default=5.0, gt=0)
    lag_interval_seconds: float = Field(default=5.0, gt=0)
    bus_retention_seconds: float = Field(default=7 * 24 * 3600, gt=0)
    # Messages an agent takes per poll (Kafka's max.poll.records).
    fetch_max_records: int = Field(default=64, ge=1)
    # While HTTP requests are in flight, agents get at least/at most this share of the loop.
    agent_share_under_load: float = Field(default=0.05, gt=0, le=1)
    bug_reports_partitions: int = Field(default=6, ge=1)

    # What is redacted from report text before it leaves the service: "all", "none", or
    # a comma-separated list of kinds (see ai_pipeline.domain.redaction.KINDS).
    redact: str = "all"

    # API.
    max_body_bytes: int = Field(default=1_048_576, ge=1024)
    # Longest a submission waits on the store and bus before answering 503.
    submit_timeout_seconds: float = Field(default=30.0, gt=0)
    # Authentication (ai_pipeline.api.auth). "auto": open while no API key was ever
    # created, closed once one was (`make run` needs no setup). "required": keys always;
    # with none in the store (never created, or the store was emptied: a flush, an eviction,
    # a failover to an empty replica) every keyed route answers 503, never open. "open": no
    # authentication at all, on purpose. Key lookups and whether any key exists are cached
    # this long per process, so a revocation takes effect within it.
    auth: Literal["auto", "required", "open"] = "auto"
    auth_cache_seconds: float = Field(default=5.0, ge=0)
    # Prometheus text at /metrics without a key (scrapers keep working); false: `read` scope.
    metrics_public: bool = True
    # Requests per key per hour (fixed windows); a key may override them; 0: unlimited.
    rate_limit_submit_per_hour: int = Field(default=100, ge=0)
    rate_limit_read_per_hour: int = Field(default=1000, ge=0)
    # Requests per client address per hour served without a key (open mode); 0: off.
    rate_limit_per_address_per_hour: int = Field(default=0, ge=0)
    # Requests with an unknown or revoked key per client address per hour: past it, that
    # address gets 429 on every keyed route until the hour ends (a key-guessing client is
    # throttled before it costs a store lookup); 0: off.
    rate_limit_auth_failures_per_address_per_hour: int = Field(default=100, ge=0)
    # Live event streams (GET /api/v1/requests/{id}/events) open at once per key (per
    # client address without one), per API process; past it 429. Each open stream counts
    # one read against the key's hourly read limit every stream_charge_seconds.
    max_streams_per_key: int = Field(default=10, ge=1)
    stream_charge_seconds: float = Field(default=60.0, gt=0)
    # HTTPS: a PEM certificate (chain) and its private key; both or neither. Without them
    # the service speaks plain HTTP (behind a TLS-terminating proxy, or on loopback).
    tls_cert_file: str | None = None
    tls_key_file: str | None = None

    # Closing the loop with the reporter (README "The reporter hears back").
    # Signs reply tokens and unsubscribe links; unset: made at random once and kept in the
    # state store (every process sharing it agrees). Changing it voids those handed out.
    signing_secret: SecretStr | None = None
    # Outgoing webhooks (a report's notify.webhook): signed with this secret; without it a
    # report asking for a webhook is refused (422).
    notify_webhook_secret: SecretStr | None = None
    notify_webhook_timeout_seconds: float = Field(default=10.0, gt=0)
    # Reporters' URLs on loopback, private or link-local addresses are refused (the
    # service is no way into its own network) unless this is set (tests, intranets).
    notify_webhook_allow_private: bool = False
    # Failed notifications are retried with backoff this long, then dead-lettered.
    notify_retry_hours: float = Field(default=24.0, gt=0)
    notify_first_retry_seconds: float = Field(default=30.0, gt=0)
    notify_max_retry_seconds: float = Field(default=3600.0, gt=0)
    # How often due retries are looked for.
    notify_sweep_seconds: float = Field(default=5.0, gt=0)
    # Email (a report's notify.email): smtp://host[:587] (STARTTLS, required),
    # smtps://host[:465] (TLS), smtp://host:25?starttls=false (plain, a local relay).
    smtp_url: str | None = None
    smtp_username: str | None = None
    smtp_password: SecretStr | None = None
    smtp_from: str | None = None  # the From: address; required with smtp_url
    smtp_ca_file: str | None = None  # a private CA for the server's certificate
    smtp_timeout_seconds: float = Field(default=30.0, gt=0)
    # Follow-up of unanswered questions: one reminder after this many days (0: none);
    # close as not_planned after this many (unset or 0: never), only when the last word
    # is ours and no exempt label is on the issue.
    needs_info_remind_days: float = Field(default=7.0, ge=0)
    needs_info_close_days: float | None = Field(default=None, ge=0)
    needs_info_exempt_labels: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: ["pinned", "security", "keep-open"]
    )
    follow_up_interval_seconds: float = Field(default=3600.0, gt=0)
    # Replies one report may send an hour (each becomes a comment by our account); 0: no cap.
    replies_per_request_per_hour: int = Field(default=10, ge=0)

    log_level: str = "INFO"
    log_json: bool = True

    def hold_policy(self) -> HoldPolicy:
        """What waits in the review queue: the reasons named, and the security review band
        while security reports are filed privately (publicly filed, it has nothing to
        decide)."""
        return HoldPolicy.from_setting(self.review_hold, self.security_reports == "private")

    def triage_targets(self) -> TriageTargets:
        overrides = {
            name: value
            for name in ("type", "priority", "severity", "duplicate", "security")
            if (value := getattr(self, f"triage_min_precision_{name}")) is not None
        }
        return TriageTargets(
            self.triage_min_precision, overrides, self.triage_security_review_recall
        )

    @field_validator(
        "llm_allowed_labels",
        "llm_allowed_assignees",
        "needs_info_exempt_labels",
        "github_repositories",
        mode="before",
    )
    @classmethod
    def _json_or_comma_list(cls, value: object) -> object:
        if isinstance(value, str):
            text = value.strip()
            if text.startswith("["):
                return json.loads(text)
            return [part.strip() for part in text.split(",") if part.strip()]
        return value

    @field_validator("github_repository", "github_private_repository")
    @classmethod
    def _owner_slash_name(cls, value: str | None) -> str | None:
        return value if value is None else _owner_slash_name(value)

    @field_validator("github_repositories")
    @classmethod
    def _repositories_are_owner_slash_name(cls, value: list[str]) -> list[str]:
        return [_owner_slash_name(repository.strip()) for repository in value]

    @field_validator("review_hold")
    @classmethod
    def _known_hold_reasons(cls, value: str) -> str:
        HoldPolicy.from_setting(value)  # raises ValueError naming the unknown reason
        return value

    @model_validator(mode="after")
    def _lease_outlasts_listing_lag(self) -> Settings:
        if self.filing_lease_seconds <= self.github_listing_lag_seconds:
            raise ValueError(
                "AI_PIPELINE_FILING_LEASE_SECONDS must exceed"
                " AI_PIPELINE_GITHUB_LISTING_LAG_SECONDS: a create call may use the lease"
                " minus the lag"
            )
        return self

    @model_validator(mode="after")
    def _tls_files_in_pairs(self) -> Settings:
        given = [f for f in (self.tls_cert_file, self.tls_key_file) if f]
        if len(given) == 1:
            raise ValueError(
                "AI_PIPELINE_TLS_CERT_FILE and AI_PIPELINE_TLS_KEY_FILE go together: set both"
                " to serve HTTPS, or neither to serve HTTP"
            )
        for path in given:
            if not os.access(path, os.R_OK) or not os.path.isfile(path):
                raise ValueError(f"TLS file {path} does not exist or cannot be read")
        return self

    @model_validator(mode="after")
    def _smtp_complete(self) -> Settings:
        if self.smtp_url and not self.smtp_from:
            raise ValueError("AI_PIPELINE_SMTP_URL needs AI_PIPELINE_SMTP_FROM (the From: address)")
        remind, close = self.needs_info_remind_days, self.needs_info_close_days
        if remind and close and close <= remind:
            raise ValueError(
                "AI_PIPELINE_NEEDS_INFO_CLOSE_DAYS must be more than"
                " AI_PIPELINE_NEEDS_INFO_REMIND_DAYS: closing comes after the reminder"
            )
        return self

    @property
    def app_repositories(self) -> list[str]:
        """The repositories whose issues are triaged in place (GitHub App mode)."""
        if self.github_repositories:
            return self.github_repositories
        return [self.github_repository] if self.github_repository else []

    @property
    def tls(self) -> bool:
        return bool(self.tls_cert_file and self.tls_key_file)

    @property
    def base_url(self) -> str:
        if self.public_url:
            return self.public_url.rstrip("/")
        wildcard = self.host in ("0.0.0.0", "127.0.0.1", "::")  # noqa: S104 (a comparison)
        host = "localhost" if wildcard else self.host
        return f"{'https' if self.tls else 'http'}://{host}:{self.port}"

    def partitions(self) -> dict[str, int]:
        counts = {**DEFAULT_PARTITIONS, Topic.BUG_REPORTS.value: self.bug_reports_partitions}
        counts.update({f"{topic}.dlq": 1 for topic in list(counts)})
        return counts
