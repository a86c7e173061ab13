"""What the GitHub App mode's end-to-end tests share: settings, issues opened on the fake
GitHub and their webhooks sent as GitHub sends them, and the checks of what was done."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import httpx

from tests.fakes.github_server import UNPACED, FakeGitHub
from tests.fakes.github_webhooks import deliver, issue_event

SECRET = "whsec-" + "e2e0hook" * 4
TOKEN = "ghp_" + "app0token0" * 4
MARKER = "<!-- ai-pipeline:triage -->"


def app_env(gh: FakeGitHub, mode: str = "apply", **extra: str) -> dict[str, str]:
    """The service acting on the fake's repository in place, with a token."""
    return {
        "AI_PIPELINE_GITHUB_TOKEN": TOKEN,
        "AI_PIPELINE_GITHUB_REPOSITORY": gh.repository,
        "AI_PIPELINE_GITHUB_API_URL": gh.url,
        "AI_PIPELINE_GITHUB_TIMEOUT_SECONDS": "2",
        "AI_PIPELINE_GITHUB_WEBHOOK_SECRET": SECRET,
        "AI_PIPELINE_GITHUB_TRIAGE_MODE": mode,
        **UNPACED,
        **extra,
    }


CRASH_BODY = (
    "The editor crashes every time I save a file named with an emoji.\n\n"
    "### Steps to reproduce\n1. Create a file named 🎉.txt\n2. Press Ctrl+S\n\n"
    "### Expected behaviour\nThe file is saved.\n\n"
    "### Actual behaviour\n```\nTraceback (most recent call last):\n"
    '  File "src/editor/save.py", line 12, in save\nUnicodeEncodeError: ascii codec\n```\n\n'
    "### Environment\nUbuntu 24.04, editor 2.3.1\n"
)


def open_issue(gh: FakeGitHub, n: int, author: str = "alice") -> dict[str, Any]:
    """An issue a person opens: varied, mostly complete crash reports."""
    return gh.add_issue(
        f"Crash {n % 41} when saving file {n} with an emoji name",
        CRASH_BODY.replace("🎉", "🎉" * (1 + n % 3)),
        author=author,
    )


@dataclass
class Sent:
    delivery: str
    number: int
    response: dict[str, Any]


def send_all(
    url: str, payloads: Sequence[tuple[int, dict[str, Any]]], rate: float, threads: int = 8
) -> list[Sent]:
    """Deliver ``issues.opened`` payloads at about ``rate`` per second; a delivery that is
    not accepted is sent again with the same id, as GitHub's "Redeliver" does."""
    sent: list[Sent] = []
    lock = threading.Lock()
    start = time.monotonic()

    def one(i: int, number: int, payload: dict[str, Any]) -> None:
        time.sleep(max(0.0, start + i / rate - time.monotonic()))
        delivery = str(uuid.uuid4())
        response = redeliver_until_accepted(url, "issues", payload, delivery)
        with lock:
            sent.append(Sent(delivery, number, response))

    with ThreadPoolExecutor(threads) as pool:
        for future in [
            pool.submit(one, i, number, payload) for i, (number, payload) in enumerate(payloads)
        ]:
            future.result()
    return sent


def redeliver_until_accepted(
    url: str, event: str, payload: dict[str, Any], delivery: str, deadline: float = 240
) -> dict[str, Any]:
    ends = time.monotonic() + deadline
    last = "nothing sent"
    while time.monotonic() < ends:
        try:
            response = deliver(url, SECRET, event, payload, delivery=delivery)
        except httpx.HTTPError as error:
            last = repr(error)
        else:
            if response.status_code == 202:
                body: dict[str, Any] = response.json()
                return body
            last = f"{response.status_code} {response.text[:200]}"
        time.sleep(0.5)
    raise TimeoutError(f"delivery {delivery} never accepted; last: {last}")


def opened_payloads(gh: FakeGitHub, count: int) -> list[tuple[int, dict[str, Any]]]:
    return [
        (issue["number"], issue_event(gh, "opened", issue["number"]))
        for issue in (open_issue(gh, n) for n in range(count))
    ]


def ours(gh: FakeGitHub, number: int) -> list[dict[str, Any]]:
    """Our comments on issue ``number``: those carrying the marker."""
    return [c for c in gh.comments(number) if (c["body"] or "").startswith(MARKER)]


def label_names(gh: FakeGitHub, number: int) -> set[str]:
    issue = gh.issue(number)
    assert issue is not None
    return {label["name"] for label in issue["labels"]}


def check_acted_once_each(
    gh: FakeGitHub, docs: dict[str, dict[str, Any]], mode: str = "apply"
) -> None:
    """Every request completed; each issue has exactly one comment of ours, and in apply
    mode exactly the labels the request says it applied, all of them what triage chose."""
    assert {d["status"] for d in docs.values()} == {"completed"}, [
        (d["bug_report_id"], d["error_message"])
        for d in docs.values()
        if d["status"] != "completed"
    ][:5]
    for doc in docs.values():
        acted = doc["progress"]["github"]["data"]["acted_on"]
        number = acted["issue_number"]
        comments = ours(gh, number)
        assert len(comments) == 1, (number, [c["id"] for c in comments])
        assert acted["comment_url"] == comments[0]["html_url"]
        chosen = set(doc["progress"]["triage"]["data"]["labels"])
        if mode == "apply":
            assert set(acted["labels_applied"]) <= chosen
            assert label_names(gh, number) == set(acted["labels_applied"]), number
            assert acted["labels_applied"], number
        else:
            assert label_names(gh, number) == set()
            assert set(acted["labels_suggested"]) <= chosen
