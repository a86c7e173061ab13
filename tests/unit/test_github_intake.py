"""The GitHub App mode's pure parts: signatures, what a delivery asks for, ids and records."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from ai_pipeline.domain.github import (
    FIRST_VERSION,
    MAX_DELIVERIES,
    IssueFacts,
    IssueRecord,
    IssueRef,
    Origin,
    claim_version,
    index_key,
    is_reserved,
    merge_facts,
    merge_label_change,
    merge_reply,
    origin_of,
    source_of,
)
from ai_pipeline.intake.github import signature
from ai_pipeline.intake.github.corrections import correction_example
from ai_pipeline.intake.github.decisions import Acknowledge, Ignore, Record, Triage, decide
from ai_pipeline.intake.github.payloads import InvalidPayload, parse
from ai_pipeline.intake.github.reports import REPLY_HEADING, report_for
from ai_pipeline.triage.rules import missing_information

SECRET = b"It's a Secret to Everybody"
REPOS = {"acme/widgets"}


# --- signatures ------------------------------------------------------------------------


def test_githubs_documented_signature_is_accepted() -> None:
    header = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
    assert signature.sign(SECRET, b"Hello, World!") == header
    assert signature.check(SECRET, b"Hello, World!", header) is None


@pytest.mark.parametrize(
    ("body", "header", "refusal"),
    [
        (b"Hello, World?", signature.sign(SECRET, b"Hello, World!"), "mismatch"),  # one byte
        (b"Hello, World!", signature.sign(b"another", b"Hello, World!"), "mismatch"),
        (b"Hello, World!", None, "missing"),
        (b"Hello, World!", "", "missing"),
        (b"Hello, World!", "sha1=01dc10d0c83e72ed246219cdd91669667fe2ca59", "unsupported"),
        (
            b"Hello, World!",
            "757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17",
            "unsupported",
        ),
        (b"Hello, World!", "sha256=" + "0" * 64, "mismatch"),
        (b"Hello, World!", "sha256=not-hex", "mismatch"),
    ],
)
def test_a_wrong_signature_is_refused_with_its_reason(
    body: bytes, header: str | None, refusal: str
) -> None:
    assert signature.check(SECRET, body, header) == refusal


# --- what a delivery asks for ----------------------------------------------------------


def issue(number: int = 7, **extra: Any) -> dict[str, Any]:
    return {
        "number": number,
        "title": "Crash on save",
        "body": "It crashes.",
        "user": {"login": "alice", "type": "User"},
        "labels": [],
        "state": "open",
        "html_url": f"https://github.com/acme/widgets/issues/{number}",
        "created_at": "2026-01-01T10:00:00Z",
        "updated_at": "2026-01-01T10:00:00Z",
        **extra,
    }


def delivery(event: str, action: str | None = None, **parts: Any) -> Any:
    payload: dict[str, Any] = {
        "repository": {
            "full_name": "acme/widgets",
            "private": False,
            "html_url": "https://github.com/acme/widgets",
        },
        "sender": {"login": "alice", "type": "User"},
        **parts,
    }
    if action is not None:
        payload["action"] = action
    return parse(event, json.dumps(payload).encode())


def waiting(**extra: Any) -> IssueRecord:
    values: dict[str, Any] = {"latest_version": 1, "acted_version": 1, **extra}
    return IssueRecord(repository="acme/widgets", number=7, **values)


def test_an_opened_issue_is_triaged() -> None:
    decision = decide(delivery("issues", "opened", issue=issue()), REPOS, None)
    assert isinstance(decision, Triage) and decision.first
    assert decision.issue == IssueRef("acme/widgets", 7) and decision.facts.author == "alice"


@pytest.mark.parametrize(
    ("parts", "reason"),
    [
        ({"issue": issue(user={"login": "dependabot[bot]", "type": "Bot"})}, "bot"),
        ({"issue": issue(), "sender": {"login": "ai-pipeline[bot]", "type": "Bot"}}, "bot"),
        ({"issue": issue(pull_request={"url": "x"})}, "pull_request"),
        (
            {"issue": issue(), "repository": {"full_name": "other/repo"}},
            "repository",
        ),
    ],
)
def test_bots_pull_requests_and_other_repositories_are_ignored(
    parts: dict[str, Any], reason: str
) -> None:
    assert decide(delivery("issues", "opened", **parts), REPOS, None) == Ignore(reason)


def test_repositories_compare_case_blind() -> None:
    parts = {"issue": issue(), "repository": {"full_name": "ACME/Widgets"}}
    assert isinstance(decide(delivery("issues", "opened", **parts), REPOS, None), Triage)


@pytest.mark.parametrize(
    ("known", "expected"),
    [
        (None, Ignore("not_waiting")),
        (waiting(), Ignore("not_waiting")),  # acted on, nothing asked: done with it
        (waiting(waiting="info"), "edited"),
        (waiting(waiting="triage"), "edited"),
        (waiting(latest_version=2), "edited"),  # a pass still in flight
        (waiting(waiting="info", state="closed"), Ignore("not_waiting")),
    ],
)
def test_an_edit_triages_again_only_while_the_issue_waits(
    known: IssueRecord | None, expected: Any
) -> None:
    changes = {"body": {"from": "It crashes."}}
    decision = decide(delivery("issues", "edited", issue=issue(), changes=changes), REPOS, known)
    if isinstance(expected, str):
        assert isinstance(decision, Triage) and decision.trigger == expected
    else:
        assert decision == expected


def test_an_edit_of_something_else_than_title_or_body_is_ignored() -> None:
    edited = delivery("issues", "edited", issue=issue(), changes={})
    assert decide(edited, REPOS, waiting(waiting="info")) == Ignore("action")


def comment(author: str = "alice", kind: str = "User") -> dict[str, Any]:
    return {"id": 55, "body": "Steps: 1. open 2. save", "user": {"login": author, "type": kind}}


@pytest.mark.parametrize(
    ("author", "kind", "known", "expected"),
    [
        ("alice", "User", waiting(waiting="info"), "answered"),
        ("ALICE", "User", waiting(waiting="info"), "answered"),
        ("alice", "User", waiting(latest_version=2), "answered"),  # asked while in flight
        ("bob", "User", waiting(waiting="info"), Ignore("not_author")),
        ("helper[bot]", "Bot", waiting(waiting="info"), Ignore("bot")),
        ("alice", "User", waiting(waiting="triage"), Ignore("not_waiting")),
        ("alice", "User", None, Ignore("not_waiting")),
    ],
)
def test_only_the_authors_comment_while_information_is_awaited_is_an_answer(
    author: str, kind: str, known: IssueRecord | None, expected: Any
) -> None:
    parts = {
        "issue": issue(),
        "comment": comment(author, kind),
        "sender": comment(author, kind)["user"],
    }
    decision = decide(delivery("issue_comment", "created", **parts), REPOS, known)
    if isinstance(expected, str):
        assert isinstance(decision, Triage) and decision.trigger == expected
        assert decision.reply == (55, "Steps: 1. open 2. save")
    else:
        assert decision == expected


def test_label_changes_and_closing_are_recorded_with_who_did_them() -> None:
    labeled = delivery("issues", "labeled", issue=issue(), label={"name": "feature"})
    by_bot = delivery(
        "issues",
        "labeled",
        issue=issue(),
        label={"name": "bug"},
        sender={"login": "ai-pipeline[bot]", "type": "Bot"},
    )
    closed = delivery("issues", "closed", issue=issue(state="closed", state_reason="duplicate"))
    decisions = [decide(d, REPOS, None) for d in (labeled, by_bot, closed)]
    assert [type(d) for d in decisions] == [Record, Record, Record]
    first, second, third = decisions
    assert isinstance(first, Record) and first.by_human and first.label == "feature"
    assert isinstance(second, Record) and not second.by_human
    assert isinstance(third, Record) and third.facts.state_reason == "duplicate"


@pytest.mark.parametrize("event", ["ping", "installation", "installation_repositories"])
def test_ping_and_installations_are_acknowledged(event: str) -> None:
    assert decide(delivery(event, "created"), REPOS, None) == Acknowledge(event)


@pytest.mark.parametrize(
    ("event", "action"), [("star", "created"), ("push", None), ("issues", "assigned")]
)
def test_other_events_and_actions_are_ignored(event: str, action: str | None) -> None:
    parts = {"issue": issue()} if event == "issues" else {}
    decision = decide(delivery(event, action, **parts), REPOS, None)
    assert decision == Ignore("event" if event != "issues" else "action")


@pytest.mark.parametrize(
    "body",
    [b"[]", b"not json", b'{"action": "opened"}', b'{"action": "opened", "issue": {"title": 3}}'],
)
def test_a_payload_without_what_its_event_needs_is_refused(body: bytes) -> None:
    with pytest.raises(InvalidPayload):
        parse("issues", body)


# --- ids, versions and records -----------------------------------------------------------


def test_request_ids_name_the_issue_and_the_pass() -> None:
    first = Origin(IssueRef("my-org/my.repo_2", 42), FIRST_VERSION)
    later = Origin(IssueRef("my-org/my.repo_2", 42), 3)
    assert first.bug_report_id == "gh:my-org:my.repo_2:42"
    assert later.bug_report_id == "gh:my-org:my.repo_2:42:3"
    assert origin_of(first.bug_report_id) == first and origin_of(later.bug_report_id) == later
    assert index_key(later.bug_report_id) == first.bug_report_id
    assert index_key("BUG-1") == "BUG-1" and origin_of("BUG-1") is None
    assert source_of(later.bug_report_id) == "github" and source_of("BUG-1") == "api"
    assert is_reserved("GH:anything") and not is_reserved("bug-gh:1")


def test_a_redelivery_keeps_its_version_and_a_new_delivery_takes_the_next() -> None:
    record = IssueRecord(repository="acme/widgets", number=7)
    record = claim_version(record, "opened", first=True)
    record = claim_version(record, "edit-1", first=False)
    record = claim_version(record, "edit-1", first=False)  # redelivered
    record = claim_version(record, "opened", first=True)  # redelivered
    record = claim_version(record, "answer", first=False)
    assert record.deliveries == {"opened": 1, "edit-1": 2, "answer": 3}
    assert record.latest_version == 3
    for n in range(2 * MAX_DELIVERIES):
        record = claim_version(record, f"d{n}", first=False)
    assert len(record.deliveries) == MAX_DELIVERIES


def test_older_facts_never_overwrite_newer_ones() -> None:
    now = datetime(2026, 1, 1, tzinfo=UTC)

    def facts(title: str, at: datetime) -> IssueFacts:
        return IssueFacts(title, "alice", "open", None, (), at)

    record = IssueRecord(repository="acme/widgets", number=7)
    record = merge_facts(record, facts("new", now))
    record = merge_facts(record, facts("old", now - timedelta(seconds=5)))
    assert record.title == "new"


def test_a_persons_label_changes_are_kept_and_make_ours_theirs() -> None:
    record = IssueRecord(repository="a/b", number=1, ours=["bug", "needs-info"])
    record = merge_label_change(record, "bug", added=False, by_human=True)
    record = merge_label_change(record, "feature", added=True, by_human=True)
    record = merge_label_change(record, "question", added=True, by_human=False)
    assert record.human_removed == ["bug"] and record.human_added == ["feature"]
    assert record.ours == ["needs-info"]
    record = merge_label_change(record, "bug", added=True, by_human=True)  # put back
    assert record.human_removed == [] and record.human_added == ["feature", "bug"]


def test_the_authors_replies_become_part_of_the_report() -> None:
    record = IssueRecord(repository="acme/widgets", number=7)
    record = merge_reply(record, 1, "Steps to reproduce:\n1. Open a file\n2. Save it")
    record = merge_reply(record, 2, "Expected: saved\n\nActual: crash\n\nVersion 2.3.1")
    record = merge_reply(record, 1, "Steps to reproduce:\n1. Open a file\n2. Save it")
    parsed = delivery("issues", "opened", issue=issue(body="Describe the bug\nIt crashes."))
    assert parsed.issue is not None and parsed.repository is not None
    origin = Origin(IssueRef("acme/widgets", 7), 2)
    report = report_for(origin, parsed.issue, parsed.repository, record.replies, "answered", "d")
    assert report.id == "gh:acme:widgets:7:2" and report.description.count(REPLY_HEADING) == 2
    assert report.reporter == "alice@users.noreply.github.com"
    assert report.metadata["github"]["private"] is False
    assert missing_information(report) == []


def test_a_persons_labels_become_a_training_example() -> None:
    labels = [{"name": "kind/bug"}, {"name": "P1"}, {"name": "severity: major"}, {"name": "ui"}]
    parsed = delivery("issues", "labeled", issue=issue(labels=labels), label={"name": "P1"})
    assert parsed.issue is not None
    at = datetime(2026, 1, 1, tzinfo=UTC)
    example = correction_example(Origin(IssueRef("acme/widgets", 7), 1), parsed.issue, at)
    assert (example["type"], example["priority"], example["severity"]) == ("bug", "P1", "major")
    assert example["id"] == "gh:acme:widgets:7" and example["repo"] == "acme/widgets"
    assert example["security"] is None and example["title"] == "Crash on save"
