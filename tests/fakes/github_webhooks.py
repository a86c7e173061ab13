"""GitHub's webhooks, as GitHub sends them, about the fake GitHub's issues.

    payload = issue_event(gh, "opened", number=1)          # GitHub's shape, from the fake
    response = deliver(url, SECRET, "issues", payload)      # signed, with GitHub's headers
    deliver(url, SECRET, "issues", payload, delivery=same)  # a redelivery: the same id

The payloads carry what GitHub's do for these events (action, issue, repository, sender,
and label, changes or comment where the event has them), built from the fake's own JSON of
the issue, comment and repository. Signatures are HMAC-SHA256 of the exact bytes sent
(``intake.github.signature.sign``, checked against @octokit/webhooks-methods' ``sign`` in
tests/e2e/test_github_app_payloads.py).
"""

from __future__ import annotations

import json
import uuid
from typing import Any

import httpx

from ai_pipeline.intake.github.signature import sign
from tests.fakes.github_server import APP_BOT_LOGIN, FakeGitHub

WEBHOOK_PATH = "/api/v1/webhooks/github"
HOOK_ID = 424242
APP_BOT = {"login": APP_BOT_LOGIN, "id": 4242, "type": "Bot"}


def user(login: str, kind: str = "User") -> dict[str, Any]:
    return {"login": login, "id": abs(hash(login)) % 100_000, "type": kind}


def issue_event(
    gh: FakeGitHub,
    action: str,
    number: int,
    *,
    sender: dict[str, Any] | None = None,
    label: str | None = None,
    changes: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """An ``issues`` event about issue ``number`` as the fake shows it now; the sender is
    the issue's author unless given."""
    issue = gh.issue(number)
    assert issue is not None, f"no issue #{number}"
    payload: dict[str, Any] = {
        "action": action,
        "issue": issue,
        "repository": gh.repository_json(),
        "sender": sender or issue["user"],
        "installation": {"id": 1, "node_id": "MDIzOkludGVncmF0aW9uSW5zdGFsbGF0aW9uMQ=="},
    }
    if label is not None:
        payload["label"] = {"id": 1, "name": label, "color": "ededed", "default": False}
    if changes is not None:
        payload["changes"] = changes
    return payload


def comment_event(gh: FakeGitHub, number: int, comment: dict[str, Any]) -> dict[str, Any]:
    """``issue_comment.created`` for ``comment`` (as the fake returned it) on ``number``."""
    payload = issue_event(gh, "created", number, sender=comment["user"])
    payload["comment"] = comment
    return payload


def body_of(payload: dict[str, Any]) -> bytes:
    return json.dumps(payload, separators=(",", ":")).encode()


def headers_for(
    secret: str, event: str, body: bytes, delivery: str | None = None
) -> dict[str, str]:
    return {
        "Content-Type": "application/json",
        "User-Agent": "GitHub-Hookshot/7c2f1a0",
        "X-GitHub-Event": event,
        "X-GitHub-Delivery": delivery or str(uuid.uuid4()),
        "X-GitHub-Hook-ID": str(HOOK_ID),
        "X-Hub-Signature-256": sign(secret.encode(), body),
    }


def deliver(
    base_url: str,
    secret: str,
    event: str,
    payload: dict[str, Any],
    *,
    delivery: str | None = None,
    client: httpx.Client | None = None,
) -> httpx.Response:
    """POST one signed delivery to the service at ``base_url``, as GitHub does."""
    body = body_of(payload)
    headers = headers_for(secret, event, body, delivery)
    if client is not None:
        return client.post(f"{base_url}{WEBHOOK_PATH}", content=body, headers=headers)
    return httpx.post(f"{base_url}{WEBHOOK_PATH}", content=body, headers=headers, timeout=30)
