"""Secrets and personal data never reach a filed issue; ordinary text is left alone."""

from __future__ import annotations

import pytest

from ai_pipeline.agents.ticket_creation import draft_issue
from ai_pipeline.domain.events import ReportTriaged
from ai_pipeline.domain.models import IssueType, Priority, Severity, TriageResult
from ai_pipeline.domain.redaction import KINDS, Redactor, redact_report
from tests.factories import report

GH = "ghp_" + "A1b2C3d4E5" * 4
SECRETS = {
    "github_token": f"token {GH} leaked",
    "aws_access_key": "key AKIAIOSFODNN7EXAMPLE in config",
    "aws_secret_key": "aws_secret_access_key = " + "wJalrXUtnFEMI/K7MDENG/bPxRfiCY" + "EXAMPLEKEY",
    "slack_token": "xoxb-123456789012-abcdefghijkl",
    "stripe_key": "sk_live_" + "4eC39HqLyjWDarjtT1zdp7dc",
    "google_api_key": "AIza" + "SyA1234567890abcdefghijklmnopqrstuv",
    "openai_key": "sk-proj-" + "abcdefghijklmnopqrstuvwx",
    "jwt": "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0."
    + "dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U",
    "bearer_token": "Authorization: Bearer abcdef0123456789abcdef",
    "url_password": "postgres://admin:hunter2secret@db.internal:5432/app",
    "password": "password=SuperSecret123",
    "email": "contact jane.doe@example.org please",
    "ipv4": "server at 203.0.113.42 refused",
    "ipv6": "peer 2001:db8:85a3::8a2e:370:7334 dropped",
    "phone": "call me at +1 (415) 555-2671",
    "private_key": "-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEA\n"
    + "-----END RSA PRIVATE KEY-----",
}
SECRET_PARTS = {
    "github_token": GH, "aws_access_key": "AKIAIOSFODNN7EXAMPLE",
    "aws_secret_key": "wJalrXUtnFEMI/K7MDENG",
    "slack_token": "xoxb-123456789012", "stripe_key": "4eC39HqLyjWDarjtT1zdp7dc",
    "google_api_key": "SyA1234567890", "openai_key": "abcdefghijklmnopqrstuvwx",
    "jwt": "dozjgNryP4J3", "bearer_token": "abcdef0123456789abcdef",
    "url_password": "hunter2secret", "password": "SuperSecret123",
    "email": "jane.doe@example.org", "ipv4": "203.0.113.42", "ipv6": "2001:db8:85a3",
    "phone": "555-2671", "private_key": "MIIEowIBAAKCAQEA",
}  # fmt: skip


@pytest.mark.parametrize("kind", sorted(SECRETS))
def test_each_kind_is_redacted_and_named(kind: str) -> None:
    out = Redactor().redact(SECRETS[kind])
    assert SECRET_PARTS[kind] not in out
    assert f"[REDACTED:{kind}]" in out


def test_every_kind_has_a_case() -> None:
    assert set(SECRETS) == set(KINDS)


@pytest.mark.parametrize(
    "text",
    [
        "Upgraded from 2.3.1 to 2.4.0 and it crashes",
        "Listening on 127.0.0.1:8080 and 0.0.0.0",
        "Error code 0x80070005 at line 1234",
        "Took 1500 ms for 20 items",
        "See https://example.com/docs/page",
        "The password field is empty",
        "Started at 12:30:45 and failed at 12:31:02",
        "std::vector<int>::iterator is invalid",
    ],
)
def test_ordinary_text_is_left_alone(text: str) -> None:
    assert Redactor().redact(text) == text


def test_only_the_password_of_a_url_is_replaced() -> None:
    out = Redactor().redact("https://user:pa55word@git.example.com/repo.git")
    assert out == "https://user:[REDACTED:url_password]@git.example.com/repo.git"


def test_kinds_can_be_chosen_or_turned_off() -> None:
    assert Redactor.from_setting("none").redact(SECRETS["email"]) == SECRETS["email"]
    only_email = Redactor.from_setting("email")
    assert "[REDACTED:email]" in only_email.redact(SECRETS["email"])
    assert only_email.redact(SECRETS["ipv4"]) == SECRETS["ipv4"]
    with pytest.raises(ValueError):
        Redactor.from_setting("email,colour")


def test_a_filed_issue_carries_no_secret_from_any_field() -> None:
    hostile = report(
        title=f"Crash with {GH}",
        description="Logs: " + " | ".join(SECRETS.values()),
        steps_to_reproduce=["Connect to postgres://admin:hunter2secret@db:5432/x"],
        actual_behavior="failed for jane.doe@example.org\nat 203.0.113.42",
        environment={"proxy": "http://u:hunter2secret@proxy:3128", "ip": "203.0.113.42"},
    )
    triage = TriageResult(
        type=IssueType.BUG, priority=Priority.HIGH, severity=Severity.MAJOR,
        category="crash", labels=["bug"],
    )  # fmt: skip
    (_status, drafted) = draft_issue(
        ReportTriaged(request_id="r1", report=hostile, triage=triage), Redactor()
    )
    body = drafted.value.decode()
    for part in SECRET_PARTS.values():
        assert part not in body
    assert "[REDACTED:github_token]" in body


def test_nested_environment_values_and_keys_are_redacted() -> None:
    token = "ghp_" + "a" * 36
    r = report(
        environment={"db": {"url": "postgres://u:hunter2pass@db.example/x"}, token: "key"},
        metadata={"trace": [{"auth": "Bearer abcdefghijklmnopqrstuvwxyz"}]},
    )
    redacted = redact_report(r, Redactor())
    text = redacted.environment_text() + str(redacted.metadata)
    assert "hunter2pass" not in text and token not in text and "abcdefghijklmnop" not in text
    assert "[REDACTED:url_password]" in text and "[REDACTED:github_token]" in text


def test_a_secret_is_found_by_its_name_in_prose_json_and_environment_keys() -> None:
    r = Redactor()
    assert r.redact("DB_PASSWORD=hunter2xx") == "DB_PASSWORD=[REDACTED:password]"
    assert "abcdef12" not in r.redact('{"client_secret": "abcdef12"}')
    env = report(environment={"DB_PASSWORD": "hunter2xx", "os": "Ubuntu 24.04"})
    assert redact_report(env, r).environment_text() == (
        "DB_PASSWORD: [REDACTED:password]\nos: Ubuntu 24.04"
    )
