"""Redaction of secrets and personal data before report text leaves the service.

The original report stays in the private state store; what is filed on a tracker (and,
later, sent to an LLM) goes through ``Redactor.redact``. Each finding is replaced by a
marker naming its kind, so a reader knows something was there and what it was.
"""

from __future__ import annotations

import functools
import ipaddress
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from ai_pipeline.domain.models import BugReport

Validator = Callable[[str], bool]


@dataclass(frozen=True)
class Rule:
    kind: str
    pattern: re.Pattern[str]
    valid: Validator | None = None
    group: int = 0  # the part of the match to replace (e.g. only a URL's password)


def _ip_address(text: str) -> bool:
    """A real address, not loopback or unspecified (those say nothing about anyone)."""
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return False
    return not address.is_loopback and not address.is_unspecified


def _phone(text: str) -> bool:
    digits = re.sub(r"\D", "", text)
    return 9 <= len(digits) <= 15


# Order matters: specific token shapes before the generic ones that would also match.
RULES: tuple[Rule, ...] = (
    Rule(
        "private_key",
        re.compile(
            r"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY-----[\s\S]*?"
            r"-----END (?:[A-Z0-9]+ )*PRIVATE KEY-----"
        ),
    ),
    Rule(
        "github_token",
        re.compile(r"\b(?:gh[pousr]_[A-Za-z0-9]{30,}|github_pat_[A-Za-z0-9_]{40,})\b"),
    ),
    Rule("aws_access_key", re.compile(r"\b(?:AKIA|ASIA)[A-Z0-9]{16}\b")),
    # The secret half has no prefix of its own: found by the name it is given.
    Rule(
        "aws_secret_key",
        re.compile(
            r"(?i)aws_?secret_?(?:access_?)?key[\"']?\s*[:=]\s*[\"']?([A-Za-z0-9/+=]{40})(?![A-Za-z0-9/+=])"
        ),
        group=1,
    ),
    Rule("slack_token", re.compile(r"\bxox[abprs]-[A-Za-z0-9-]{10,}\b")),
    Rule("stripe_key", re.compile(r"\b[rs]k_(?:live|test)_[A-Za-z0-9]{16,}\b")),
    Rule("google_api_key", re.compile(r"\bAIza[0-9A-Za-z_\-]{35}\b")),
    Rule("openai_key", re.compile(r"\bsk-(?:proj-)?[A-Za-z0-9_\-]{20,}\b")),
    Rule(
        "jwt", re.compile(r"\beyJ[A-Za-z0-9_\-]{8,}\.eyJ[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]{8,}\b")
    ),
    Rule(
        "bearer_token",
        re.compile(r"(?i)\b(?:authorization:\s*)?bearer\s+([A-Za-z0-9._~+/\-]{16,}=*)"),
        group=1,
    ),
    Rule(
        "url_password",
        # The user may be empty (redis://:password@host).
        re.compile(r"\b[a-z][a-z0-9+.\-]*://[^\s:/@]*:([^\s@/]+)@", re.IGNORECASE),
        group=1,
    ),
    Rule(
        "password",
        re.compile(
            # Not \b: DB_PASSWORD=… and "client_secret": "…" name a secret as well. The
            # optional quote after the name covers JSON ("password": "…").
            r"(?i)(?<![a-z0-9])(?:password|passwd|pwd|secret|api[_-]?key|access[_-]?token"
            r"|auth[_-]?token)[\"']?\s*[:=]\s*[\"']?([^\s\"',;]{4,})"
        ),
        group=1,
    ),
    Rule("email", re.compile(r"\b[A-Za-z0-9._%+\-]+@[A-Za-z0-9.\-]+\.[A-Za-z]{2,}\b")),
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


def _replace(match: re.Match[str], rule: Rule) -> str:
    found = match.group(rule.group)
    if rule.valid is not None and not rule.valid(found):
        return match.group(0)
    whole = match.group(0)
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
