"""Pure domain models: what a bug report, a triage result and an issue draft are."""

from __future__ import annotations

import re
from enum import StrEnum
from typing import Annotated, Any
from urllib.parse import urlsplit

import orjson
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator, model_validator

MAX_TITLE = 300
MAX_TEXT = 65_536
MAX_ATTACHMENTS = 20
MAX_ENV = 16_384
_ANSI = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]")
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")


def strip_controls(text: str) -> str:
    """Terminal escapes and control characters (tab and newlines kept) never reach an issue,
    a log or a prompt: they hide text from a reader or drive the reader's terminal."""
    return _CONTROL.sub("", _ANSI.sub("", text))


Text = Annotated[str, AfterValidator(strip_controls)]
MAX_JSON_BYTES = 16_384
# Keys at every level together: a flat object of thousands of tiny keys fits the byte
# budget yet costs every reader (triage features, state, logs) a key each.
MAX_JSON_KEYS = 200


def _depth(value: Any) -> int:
    if isinstance(value, dict):
        return 1 + max((_depth(v) for v in value.values()), default=0)
    if isinstance(value, list):
        return 1 + max((_depth(v) for v in value), default=0)
    return 0


def _keys(value: Any) -> int:
    if isinstance(value, dict):
        return len(value) + sum(_keys(v) for v in value.values())
    if isinstance(value, list):
        return sum(_keys(v) for v in value)
    return 0


def _check_json_bounds(value: dict[str, Any], name: str, max_depth: int) -> None:
    if _depth(value) > max_depth:
        raise ValueError(f"{name} nests deeper than {max_depth} levels")
    if _keys(value) > MAX_JSON_KEYS:
        raise ValueError(f"{name} has more than {MAX_JSON_KEYS} keys")
    if len(orjson.dumps(value, default=str)) > MAX_JSON_BYTES:
        raise ValueError(f"{name} is larger than {MAX_JSON_BYTES} bytes as JSON")


class IssueType(StrEnum):
    BUG = "bug"
    FEATURE = "feature"
    QUESTION = "question"


class Priority(StrEnum):
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"
    CRITICAL = "critical"


class Severity(StrEnum):
    MINOR = "minor"
    MODERATE = "moderate"
    MAJOR = "major"
    BLOCKER = "blocker"


class SecurityBand(StrEnum):
    """What happens to a report that may be about security: ``private`` is filed away from
    the public tracker, ``review`` waits for a maintainer to decide, ``public`` is filed as
    any other report."""

    PRIVATE = "private"
    REVIEW = "review"
    PUBLIC = "public"


class Attachment(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Text = Field(min_length=1, max_length=255)
    url: Text | None = Field(default=None, max_length=2048)
    content_type: Text | None = Field(default=None, max_length=255)
    size_bytes: int | None = Field(default=None, ge=0)


class Notify(BaseModel):
    """Where the reporter wants to hear back: a webhook of theirs, and/or their email."""

    model_config = ConfigDict(extra="forbid")

    webhook: str | None = Field(default=None, max_length=2048)
    email: bool = False

    @field_validator("webhook")
    @classmethod
    def _webhook_is_http(cls, value: str | None) -> str | None:
        if value is None:
            return None
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname or _CONTROL.search(value):
            raise ValueError("webhook must be an http(s) URL")
        if any(c.isspace() for c in value):
            raise ValueError("webhook must be an http(s) URL without spaces")
        return value

    @property
    def wanted(self) -> bool:
        return self.webhook is not None or self.email


class BugReport(BaseModel):
    """A report as a reporter submits it. Text fields are data, never instructions."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    id: str = Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9._:\-]+$")
    title: Text = Field(min_length=1, max_length=MAX_TITLE)
    description: Text = Field(min_length=1, max_length=MAX_TEXT)
    reporter: str = Field(min_length=3, max_length=320)
    environment: Text | dict[str, Any] | None = None
    steps_to_reproduce: Text | list[Text] | None = None
    expected_behavior: Text | None = Field(default=None, max_length=MAX_TEXT)
    actual_behavior: Text | None = Field(default=None, max_length=MAX_TEXT)
    attachments: list[Attachment] = Field(default_factory=list, max_length=MAX_ATTACHMENTS)
    metadata: dict[str, Any] = Field(default_factory=dict)
    notify: Notify | None = None

    @field_validator("reporter")
    @classmethod
    def _reporter_is_email(cls, value: str) -> str:
        local, sep, domain = value.rpartition("@")
        # An address, not prose: a control character in it is refused, not stripped.
        if not sep or not local or "." not in domain or " " in value or _CONTROL.search(value):
            raise ValueError("reporter must be an email address")
        return value

    @field_validator("environment")
    @classmethod
    def _environment_is_bounded(
        cls, value: str | dict[str, Any] | None
    ) -> str | dict[str, Any] | None:
        if isinstance(value, dict):
            _check_json_bounds(value, "environment", max_depth=3)
        elif isinstance(value, str) and len(value) > MAX_ENV:
            raise ValueError(f"at most {MAX_ENV} characters")
        return value

    @field_validator("metadata")
    @classmethod
    def _metadata_is_bounded(cls, value: dict[str, Any]) -> dict[str, Any]:
        _check_json_bounds(value, "metadata", max_depth=5)
        return value

    @field_validator("steps_to_reproduce")
    @classmethod
    def _steps_are_bounded(cls, value: str | list[str] | None) -> str | list[str] | None:
        if isinstance(value, list) and (len(value) > 100 or any(len(s) > 4096 for s in value)):
            raise ValueError("at most 100 steps of 4096 characters each")
        if isinstance(value, str) and len(value) > MAX_TEXT:
            raise ValueError(f"at most {MAX_TEXT} characters")
        return value

    def steps_text(self) -> str:
        if isinstance(self.steps_to_reproduce, list):
            return "\n".join(f"{i}. {s}" for i, s in enumerate(self.steps_to_reproduce, 1))
        return self.steps_to_reproduce or ""

    def environment_text(self) -> str:
        if isinstance(self.environment, dict):
            return strip_controls("\n".join(f"{k}: {v}" for k, v in self.environment.items()))
        return self.environment or ""

    def full_text(self) -> str:
        """Everything a model may read, title first."""
        parts = [
            self.title,
            self.description,
            self.steps_text(),
            self.expected_behavior or "",
            self.actual_behavior or "",
            self.environment_text(),
        ]
        return "\n".join(p for p in parts if p)


class DuplicateCandidate(BaseModel):
    bug_report_id: str
    request_id: str | None = None
    issue_number: int | None = None
    title: str = ""
    similarity: float
    # Set when the match was an earlier duplicate of this (canonical) report: the
    # similarity is the one to that duplicate, whose id this is.
    via_bug_report_id: str | None = None


class AssigneeSuggestion(BaseModel):
    assignee: str | None = None
    team: str | None = None
    reason: str


class TriageResult(BaseModel):
    """What triage decided. ``confidence`` holds calibrated probabilities that a value is
    right; a field listed in ``suggested`` stayed below its threshold, so its value is shown
    as a suggestion and gets no label. ``priority`` and ``severity`` are None when nothing
    in the report supports a value. ``reasons`` says, per field, what the value rests on.

    ``security_sensitive`` follows ``security_band`` (true for ``private`` and ``review``);
    a result written before bands existed carries only the flag, read as ``private``."""

    type: IssueType
    priority: Priority | None = None
    severity: Severity | None = None
    category: str
    labels: list[str]
    duplicate_candidates: list[DuplicateCandidate] = Field(default_factory=list)
    duplicate_of: DuplicateCandidate | None = None
    missing_information: list[str] = Field(default_factory=list)
    security_sensitive: bool = False
    security_band: SecurityBand = SecurityBand.PUBLIC
    assignee_suggestion: AssigneeSuggestion | None = None
    confidence: dict[str, float] = Field(default_factory=dict)
    reasons: dict[str, str] = Field(default_factory=dict)
    suggested: list[str] = Field(default_factory=list)
    engine: str = "local"

    @model_validator(mode="before")
    @classmethod
    def _band_of_an_older_result(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("security_band") is None:
            flagged = bool(data.get("security_sensitive"))
            band = SecurityBand.PRIVATE if flagged else SecurityBand.PUBLIC
            data = {**data, "security_band": band}
        return data

    @model_validator(mode="after")
    def _flag_follows_the_band(self) -> TriageResult:
        # Assignment validation is off: setting the attribute here does not recurse.
        self.security_sensitive = self.security_band is not SecurityBand.PUBLIC
        return self

    def decided(self, field: str) -> bool:
        """Whether ``field`` cleared its threshold (a value that is only a suggestion, or a
        priority or severity left empty, is not decided)."""
        if field in ("priority", "severity") and getattr(self, field) is None:
            return False
        return field not in self.suggested


class IssueDraft(BaseModel):
    title: str
    body: str
    labels: list[str]
    assignees: list[str] = Field(default_factory=list)


class FiledIssue(BaseModel):
    number: int
    url: str  # the issue's page, or the comment's when ``comment`` is set
    title: str = ""
    created: bool = True  # False when reconciliation found an issue filed earlier
    # Filed as a comment on issue ``number`` (a duplicate, in the "comment" duplicate mode).
    comment: bool = False
