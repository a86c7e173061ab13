"""The parts of GitHub's webhook payloads the service reads, and nothing more.

Every model ignores what it does not name, so GitHub adding fields changes nothing; fields
GitHub documents as nullable are optional here. A payload that lacks what its event needs
(an ``issues`` event without an issue) is refused as invalid, never guessed.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import orjson
from pydantic import BaseModel, ConfigDict, Field, ValidationError

_LENIENT = ConfigDict(extra="ignore", frozen=True)


class User(BaseModel):
    model_config = _LENIENT

    login: str
    type: str = "User"  # "Bot" for Apps (our own included), "Organization", "User"

    @property
    def is_bot(self) -> bool:
        # GitHub Apps act as "<slug>[bot]" users of type Bot; older integrations only have
        # the suffix.
        return self.type == "Bot" or self.login.endswith("[bot]")


class Label(BaseModel):
    model_config = _LENIENT

    name: str


class Issue(BaseModel):
    model_config = _LENIENT

    number: int
    title: str = ""
    body: str | None = None
    user: User | None = None
    labels: list[Label] = Field(default_factory=list)
    state: str = "open"
    state_reason: str | None = None
    locked: bool = False
    html_url: str = ""
    created_at: datetime | None = None
    updated_at: datetime | None = None
    # The issues API and its webhooks show pull requests as issues carrying this key.
    pull_request: dict[str, Any] | None = None

    @property
    def label_names(self) -> tuple[str, ...]:
        return tuple(label.name for label in self.labels)

    @property
    def author(self) -> str | None:
        return self.user.login if self.user else None


class Comment(BaseModel):
    model_config = _LENIENT

    id: int
    body: str | None = None
    user: User | None = None
    html_url: str = ""
    created_at: datetime | None = None


class Repository(BaseModel):
    model_config = _LENIENT

    full_name: str
    private: bool = False
    html_url: str = ""


class Changes(BaseModel):
    model_config = _LENIENT

    title: dict[str, Any] | None = None
    body: dict[str, Any] | None = None


class Delivery(BaseModel):
    """One webhook: its event (``X-GitHub-Event``) and the payload's common parts."""

    model_config = _LENIENT

    event: str
    action: str | None = None
    issue: Issue | None = None
    comment: Comment | None = None
    repository: Repository | None = None
    sender: User | None = None
    label: Label | None = None
    changes: Changes | None = None


class InvalidPayload(ValueError):
    """Not a JSON object of the shape its event has; the message says where."""


def parse(event: str, body: bytes) -> Delivery:
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise InvalidPayload("the body is not JSON") from None
    if not isinstance(data, dict):
        raise InvalidPayload("the body is not a JSON object")
    try:
        delivery = Delivery.model_validate({**data, "event": event})
    except ValidationError as error:
        first = error.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "body"
        raise InvalidPayload(f"{where}: {first['msg']}") from None
    if event in ("issues", "issue_comment") and (delivery.issue is None or delivery.action is None):
        raise InvalidPayload(f"a {event} event without its issue or action")
    if event == "issue_comment" and delivery.comment is None:
        raise InvalidPayload("an issue_comment event without its comment")
    return delivery
