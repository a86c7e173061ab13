"""Redaction of secrets and personal data before report text leaves the service.

The original report stays in the private state store; what is filed on a tracker (and,
later, sent to an LLM) goes through ``Redactor.redact``. Each finding is replaced by a
marker naming its kind, so a reader knows something was there and what it was.
"""

from __future__ import annotations

import base64
import binascii
import functools
import ipaddress
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from ai_pipeline.domain.models import BugReport
from ai_pipeline.text.patterns import Match, Pattern, linear

Validator = Callable[[str], bool]
REDACTED = "[REDACTED:"


@dataclass(frozen=True)
class Rule:
    kind: str
    # RE2 (linear by construction), or Python's re where a lookaround is needed and a
    # ReDoS checker proves the pattern linear (tests/unit/test_linear_patterns.py).
    pattern: Pattern | re.Pattern[str]
    valid: Validator | None = None
    group: int = 0  # the part of the match to replace (e.g. only a URL's password)
    # What may not come right after the match: the lookahead RE2 does not have.
    not_followed_by: str = ""


def _ip_address(text: str) -> bool:
    """A real address, not loopback or unspecified (those say nothing about anyone)."""
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return False
    return not address.is_loopback and not address.is_unspecified


def _phone(text: str) -> bool:
    return 9 <= sum(c.isdecimal() for c in text) <= 15


def _basic_credentials(text: str) -> bool:
    """``user:password`` in Base64, as HTTP Basic authentication sends it; a word that
    merely follows "basic" in prose decodes to no such text."""
    try:
        decoded = base64.b64decode(text + "=" * (-len(text) % 4), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        return False
    return ":" in decoded and decoded.isprintable()


_BASE64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/="

# Order matters: specific token shapes before the generic ones that would also match.
RULES: tuple[Rule, ...] = (
    Rule(
        "private_key",
        linear(
            r"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY-----[\s\S]*?"
            r"-----END (?:[A-Z0-9]+ )*PRIVATE KEY-----"
        ),
    ),
    Rule(
        "github_token",
        linear(r"\b(?:gh[pousr]_[A-Za-z0-9]{30,}|github_pat_[A-Za-z0-9_]{40,})\b"),
    ),
    Rule("aws_access_key", linear(r"\b(?:AKIA|ASIA)[A-Z0-9]{16}\b")),
    # The secret half has no prefix of its own: found by the name it is given.
    Rule(
        "aws_secret_key",
        linear(r"(?i)aws_?secret_?(?:access_?)?key[\"']?\s*[:=]\s*[\"']?([A-Za-z0-9/+=]{40})"),
        group=1,
        not_followed_by=_BASE64,
    ),
    Rule("slack_token", linear(r"\bxox[abprs]-[A-Za-z0-9-]{10,}\b")),
    # Incoming-webhook URLs are their own credential: whoever has one may post.
    Rule(
        "webhook_url",
        linear(
            r"(?i)\b(?:hooks\.slack\.com/(?:services|workflows|triggers)"
            r"|(?:[a-z0-9-]+\.)?discord(?:app)?\.com/api/webhooks"
            r"|[a-z0-9.\-]*webhook\.office\.com/webhookb2"
            r"|outlook\.office(?:365)?\.com/webhook)/([^\s\"'<>`]+)"
        ),
        group=1,
    ),
    Rule("stripe_key", linear(r"\b[rs]k_(?:live|test)_[A-Za-z0-9]{16,}\b")),
    Rule("google_api_key", linear(r"\bAIza[0-9A-Za-z_\-]{35}\b")),
    Rule("openai_key", linear(r"\bsk-(?:proj-)?[A-Za-z0-9_\-]{20,}\b")),
    Rule("jwt", linear(r"\beyJ[A-Za-z0-9_\-]{8,}\.eyJ[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]{8,}\b")),
    # This service's own API keys (domain/api_keys.py): "aip_" and 43 URL-safe characters.
    Rule("ai_pipeline_key", linear(r"\baip_[A-Za-z0-9_\-]{20,}")),
    Rule(
        "bearer_token",
        linear(r"(?i)\b(?:authorization:\s*)?bearer\s+([A-Za-z0-9._~+/\-]{16,}=*)"),
        group=1,
    ),
    Rule(
        "basic_auth",
        linear(r"(?i)\bbasic\s+([A-Za-z0-9+/]{6,}={0,2})"),
        valid=_basic_credentials,
        group=1,
    ),
    # A Cookie or Set-Cookie header's value: session ids are credentials.
    Rule(
        "cookie",
        linear(r"(?i)\b(?:set-)?cookie[\"']?[ \t]*:[ \t]*[\"']?([^\s=;,\"']+=[^\r\n\"']*)"),
        group=1,
    ),
    Rule(
        "url_password",
        # The user may be empty (redis://:password@host).
        linear(r"(?i)\b[a-z][a-z0-9+.\-]*://[^\s:/@]*:([^\s@/]+)@"),
        group=1,
    ),
    Rule(
        "password",
        linear(
            # Not \b: DB_PASSWORD=… and "client_secret": "…" name a secret as well. The
            # optional quote after the name covers JSON ("password": "…"). The character
            # before the name is matched, not replaced.
            r"(?i)(?:^|[^a-z0-9])(?:password|passwd|pwd|secret|api[_-]?key|access[_-]?token"
            r"|auth[_-]?token)[\"']?\s*[:=]\s*[\"']?([^\s\"',;]{4,})"
        ),
        group=1,
    ),
    # Query parameters that carry a credential: ?token=, ?sig=, X-Amz-Signature=, ?key=…
    Rule(
        "secret_parameter",
        linear(
            r"(?i)(?:^|[?&;#\s\"'(,])(?:x-(?:amz|goog)-)?"
            r"(?:(?:refresh|id|session|security|access|auth|api|client|signing)[_-]?)?"
            r"(?:token|key|signature|sig|credential)=([^&#\s\"'<>]{4,})"
        ),
        group=1,
    ),
    Rule("email", linear(r"\b[A-Za-z0-9._%+\-]+@[A-Za-z0-9.\-]+\.[A-Za-z]{2,}\b")),
    # Addresses and phone numbers are told apart from version numbers and times by what
    # surrounds them (lookaround, so Python's re: linear by the ReDoS checker's proof).
    Rule(
        "ipv6",
        re.compile(r"(?<![\w:])(?:[0-9A-Fa-f]{0,4}:){2,7}[0-9A-Fa-f]{0,4}(?![\w:])"),
        valid=_ip_address,
    ),
    Rule("ipv4", re.compile(r"(?<![\w.])(?:\d{1,3}\.){3}\d{1,3}(?![\w.])"), valid=_ip_address),
    Rule(
        "phone",
        re.compile(r"(?<![\w.])\+?\(?\d{1,4}\)?(?:[\s\-.]?\(?\d{2,4}\)?){2,5}(?![\w.])"),
        valid=_phone,
    ),
)
KINDS = tuple(rule.kind for rule in RULES)


class Redactor:
    def __init__(self, kinds: Iterable[str] = KINDS):
        wanted = set(kinds)
        unknown = wanted - set(KINDS)
        if unknown:
            raise ValueError(f"unknown redaction kinds: {', '.join(sorted(unknown))}")
        self._rules = [rule for rule in RULES if rule.kind in wanted]

    @classmethod
    def from_setting(cls, value: str) -> Redactor:
        """``all``, ``none``, or a comma-separated list of kinds."""
        value = value.strip().lower()
        if value == "all":
            return cls()
        if value in ("", "none"):
            return cls(())
        return cls(part.strip() for part in value.split(",") if part.strip())

    def redact(self, text: str) -> str:
        for rule in self._rules:
            text = rule.pattern.sub(functools.partial(_replace, rule=rule), text)
        return text


def _replace(match: Match | re.Match[str], rule: Rule) -> str:
    found: str = match.group(rule.group)
    whole: str = match.group(0)
    if found.startswith(REDACTED) or (rule.valid is not None and not rule.valid(found)):
        return whole
    after = match.string[match.end() : match.end() + 1]
    if after and after in rule.not_followed_by:
        return whole
    start = match.start(rule.group) - match.start(0)
    return whole[:start] + f"[REDACTED:{rule.kind}]" + whole[start + len(found) :]


def redact_report(report: BugReport, redactor: Redactor) -> BugReport:
    """A copy of ``report`` whose every free-text field has been redacted."""
    r = redactor.redact
    environment: str | dict[str, Any] | None = report.environment
    if isinstance(environment, dict):
        environment = redact_json(environment, redactor)
    elif isinstance(environment, str):
        environment = r(environment)
    steps: str | list[str] | None = report.steps_to_reproduce
    if isinstance(steps, list):
        steps = [r(s) for s in steps]
    elif isinstance(steps, str):
        steps = r(steps)
    return report.model_copy(
        update={
            "title": r(report.title),
            "description": r(report.description),
            "environment": environment,
            "steps_to_reproduce": steps,
            "expected_behavior": r(report.expected_behavior or "") or None,
            "actual_behavior": r(report.actual_behavior or "") or None,
            "metadata": redact_json(report.metadata, redactor),
            "attachments": [
                a.model_copy(update={"name": r(a.name), "url": r(a.url) if a.url else None})
                for a in report.attachments
            ],
        }
    )


def redact_json(value: Any, redactor: Redactor) -> Any:
    """Every string in a JSON value redacted, keys included and at any depth: an
    environment ``{"db": {"url": "postgres://u:pw@…"}}`` is printed whole into the issue."""
    if isinstance(value, str):
        return redactor.redact(value)
    if isinstance(value, dict):
        return {
            redactor.redact(str(k)): _redact_named(str(k), v, redactor) for k, v in value.items()
        }
    if isinstance(value, list):
        return [redact_json(v, redactor) for v in value]
    return value


def _redact_named(name: str, value: Any, redactor: Redactor) -> Any:
    """A string value read with its key, as ``name: value``: the rules that find a secret
    by its name (``{"DB_PASSWORD": "…"}``, ``{"aws_secret_access_key": "…"}``) apply."""
    if not isinstance(value, str):
        return redact_json(value, redactor)
    prefix = f"{name}: "
    named = redactor.redact(prefix + value)
    return named[len(prefix) :] if named.startswith(prefix) else redactor.redact(value)
