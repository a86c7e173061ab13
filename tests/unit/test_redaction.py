"""Secrets and personal data never reach a filed issue; ordinary text is left alone."""

from __future__ import annotations

import base64
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ai_pipeline.agents.ticket_creation import draft_issue
from ai_pipeline.domain.events import ReportTriaged
from ai_pipeline.domain.models import IssueType, Priority, Severity, TriageResult
from ai_pipeline.domain.redaction import KINDS, Redactor, redact_report
from tests.factories import report

GH = "ghp_" + "A1b2C3d4E5" * 4
BASIC = base64.b64encode(b"deploy:" + b"s3cr3t-Pass").decode()
AIP = "aip_" + "Qm9vZ2llV29vZ2llMTIzNDU2Nzg5MGFiY2RlZmdoaWp"
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
    "basic_auth": f"curl -H 'Authorization: Basic {BASIC}' https://api.example.com",
    "cookie": "Cookie: sessionid=" + "9f8e7d6c5b4a3f2e" + "; csrftoken=" + "Kq3v9ZpX",
    "webhook_url": "posting to https://hooks.slack.com/services/T0001/B0002/"
    + "XyZ123abcDEF456ghiJKL fails",
    "secret_parameter": "GET https://cdn.example.com/f.png?token=" + "Zm9vYmFyYmF6cXV4" + "&v=2",
    "ai_pipeline_key": f"AI_PIPELINE key {AIP} returns 401",
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
    "basic_auth": BASIC, "cookie": "9f8e7d6c5b4a3f2e",
    "webhook_url": "XyZ123abcDEF456ghiJKL", "secret_parameter": "Zm9vYmFyYmF6cXV4",
    "ai_pipeline_key": AIP[4:],
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
        "Basic functionality works; basic auth is broken",
        "The cookie banner covers the button; Cookie: none set",
        "Use the signature= option of the sign command",
        "See https://hooks.slack.com/ and https://discord.com/api/ docs",
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


@pytest.mark.parametrize(
    ("text", "secret", "kind"),
    [
        ("Proxy-Authorization: basic " + BASIC, BASIC, "basic_auth"),
        ("Set-Cookie: id=a3fWa9Zk2; Expires=Wed; Secure; HttpOnly", "a3fWa9Zk2", "cookie"),
        ('headers: {"Cookie": "sid=4f7c1e9a0b"}', "4f7c1e9a0b", "cookie"),
        (
            "hook https://discord.com/api/webhooks/1234567890/" + "aBcD-eFgH_iJkL",
            "aBcD-eFgH_iJkL",
            "webhook_url",
        ),
        (
            "https://acme.webhook.office.com/webhookb2/" + "0a1b2c3d-4e5f@x/IncomingWebhook/9z",
            "0a1b2c3d-4e5f",
            "webhook_url",
        ),
        ("callback https://api.example.com/hook?sig=" + "c2lnbmF0dXJl", "c2lnbmF0dXJl", None),
        ("?signature=" + "0123abcd4567ef&x=1", "0123abcd4567ef", None),
        ("maps.example.com/api?key=" + "Xk29DmQ8", "Xk29DmQ8", None),
        ("s3.example.com/b/k?X-Amz-Signature=" + "9f8e7d6c5b4a", "9f8e7d6c5b4a", None),
        ("https://x.example/cb#access_token=" + "ya29.A0ARrdaM", "ya29.A0ARrdaM", None),
        ("token=" + "t0k3nV4lu3 in the log", "t0k3nV4lu3", None),
    ],
)
def test_credentials_in_headers_cookies_webhooks_and_query_strings_are_redacted(
    text: str, secret: str, kind: str | None
) -> None:
    out = Redactor().redact(text)
    assert secret not in out, out
    assert "[REDACTED:" in out
    if kind is not None:
        assert f"[REDACTED:{kind}]" in out, out


def test_a_redacted_value_is_not_redacted_again_under_another_name() -> None:
    out = Redactor().redact(f"https://x.example/?access_token={GH}&key=" + "Zm9vYmFy")
    assert out == (
        "https://x.example/?access_token=[REDACTED:github_token]&key=[REDACTED:secret_parameter]"
    )


# The rules as they were on Python's re, before RE2: on ASCII text the RE2 rules must redact
# exactly as these did (RE2's \w and \b are ASCII; elsewhere they may redact a little more).
_OLD_RULES = {
    "private_key": (
        r"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY-----[\s\S]*?"
        r"-----END (?:[A-Z0-9]+ )*PRIVATE KEY-----",
        0,
    ),
    "aws_secret_key": (
        r"(?i)aws_?secret_?(?:access_?)?key[\"']?\s*[:=]\s*[\"']?([A-Za-z0-9/+=]{40})"
        r"(?![A-Za-z0-9/+=])",
        1,
    ),
    "jwt": (r"\beyJ[A-Za-z0-9_\-]{8,}\.eyJ[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]{8,}\b", 0),
    "url_password": (r"(?i)\b[a-z][a-z0-9+.\-]*://[^\s:/@]*:([^\s@/]+)@", 1),
    "password": (
        r"(?i)(?<![a-z0-9])(?:password|passwd|pwd|secret|api[_-]?key|access[_-]?token"
        r"|auth[_-]?token)[\"']?\s*[:=]\s*[\"']?([^\s\"',;]{4,})",
        1,
    ),
    "email": (r"\b[A-Za-z0-9._%+\-]+@[A-Za-z0-9.\-]+\.[A-Za-z]{2,}\b", 0),
}


def _old_redact(kind: str, text: str) -> str:
    pattern, group = _OLD_RULES[kind]

    def replace(match: re.Match[str]) -> str:
        start, end = match.start(group) - match.start(), match.end(group) - match.start()
        whole = match.group(0)
        return whole[:start] + f"[REDACTED:{kind}]" + whole[end:]

    return re.sub(pattern, replace, text)


_PIECES = st.sampled_from(
    [
        "a", "Z", "9", "_", "-", ".", "@", ":", "/", "=", "+", " ", "\n", '"', "'", ",", ";",
        "x.org", "eyJhbGciOi", "https://", "u:pw", "password", "secret=", "aws_secret_key=",
        "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", "-----BEGIN RSA PRIVATE KEY-----",
        "-----END RSA PRIVATE KEY-----", "jane.doe@example.org", "-----",
    ]
)  # fmt: skip


@settings(max_examples=400, deadline=None)
@given(st.lists(_PIECES, max_size=30).map("".join), st.sampled_from(sorted(_OLD_RULES)))
def test_re2_rules_redact_ascii_text_as_the_backtracking_rules_did(text: str, kind: str) -> None:
    assert Redactor([kind]).redact(text) == _old_redact(kind, text)
