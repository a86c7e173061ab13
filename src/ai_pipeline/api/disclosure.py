"""What a caller without the ``admin`` scope is shown (README, "Authentication and limits").

A ``read`` key is for dashboards, integrations and reporters following their reports; it
must not become a way to read other people's reports or a vulnerability before it is fixed:

- every text a status document carries from reports (``progress.*.data``: duplicate
  candidates' titles, which are other reporters' words, triage reasons, questions…) is
  passed through the ``Redactor`` (tokens, passwords, e-mail addresses, hosts…);
- a request triaged security-sensitive shows its status and steps, but not its step data
  nor where it was filed (a private repository's URL names it);
- a held report in the review queue shows redacted, and a security-sensitive one not at
  all (title and description withheld);
- the local tracker's security issues are not listed, and not found, for ``read``;
- the health document shows each component's status, not its details (error text, hosts,
  repository names), to anyone without ``admin`` (it is open to all).

``admin`` (and everyone while the service is open) sees everything as stored.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request

from ai_pipeline.domain.redaction import Redactor
from ai_pipeline.triage.rules import SECURITY_LABEL

WITHHELD = "withheld: security-sensitive, the admin scope shows it"


def admin(request: Request) -> bool:
    """Whether the caller sees everything: an admin key, or a service that is open (the
    guard records it; a route the guard does not cover sees the reduced view)."""
    return bool(request.scope.get("state", {}).get("admin", False))


class Disclosure:
    def __init__(self, redactor: Redactor):
        self._redactor = redactor

    def status(self, doc: dict[str, Any], admin: bool) -> dict[str, Any]:
        """A status document (``RequestState.public_view``) as this caller may see it."""
        if admin:
            return doc
        shown = dict(doc)
        if _security_sensitive(doc):
            shown["progress"] = {
                step: {**progress, "data": {"withheld": WITHHELD}}
                for step, progress in doc.get("progress", {}).items()
            }
            shown["github_issue_url"] = None
            return shown
        shown["progress"] = {
            step: {**progress, "data": self._redacted(progress.get("data", {}))}
            for step, progress in doc.get("progress", {}).items()
        }
        return shown

    def review(self, item: dict[str, Any], admin: bool) -> dict[str, Any]:
        """A review-queue entry as this caller may see it."""
        if admin:
            return item
        if "security" in item.get("reasons", []) or item.get("triage", {}).get(
            "security_sensitive"
        ):
            return {**item, "title": None, "description": None, "triage": {}, "withheld": WITHHELD}
        return {
            **item,
            "title": self._redactor.redact(item["title"]),
            "description": self._redactor.redact(item["description"]),
            "triage": self._redacted(item.get("triage", {})),
        }

    def _redacted(self, value: Any) -> Any:
        if isinstance(value, str):
            return self._redactor.redact(value)
        if isinstance(value, dict):
            return {k: self._redacted(v) for k, v in value.items()}
        if isinstance(value, list):
            return [self._redacted(v) for v in value]
        return value


def statuses_only(health: dict[str, Any]) -> dict[str, Any]:
    """The health document without its components' details."""
    components = {name: {"status": c["status"]} for name, c in health["components"].items()}
    return {**health, "components": components}


def private_issue(labels: list[str]) -> bool:
    """A local-tracker issue only ``admin`` sees: a security report filed here privately."""
    return SECURITY_LABEL in labels


def _security_sensitive(doc: dict[str, Any]) -> bool:
    triage = doc.get("progress", {}).get("triage", {}).get("data", {})
    return bool(triage.get("security_sensitive"))
