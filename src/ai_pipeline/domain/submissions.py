"""Whose report id is it: a report's ``id`` (and an ``Idempotency-Key``) is looked up within
the scope of the API key that submitted it, so two clients choosing the same id file two
reports and neither ever sees the other's request.

Within one scope, the same id with the same report is a retry (the existing request is
returned); the same id with another report is a client's mistake, refused rather than
silently dropping the new report. "The same report" is the same canonical JSON (key order
and whitespace of the body do not matter), compared by its SHA-256.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from typing import Literal

from ai_pipeline.domain.models import BugReport
from ai_pipeline.domain.request_state import RequestState, RequestStatus, new_request

# The one scope of a service that authenticates nobody (AI_PIPELINE_AUTH=open, or auto with
# no key yet), and of reports submitted before ids were scoped. Never a key id ("k_…").
OPEN_SCOPE = "open"
LookupKind = Literal["id", "key"]  # the report's id, or the Idempotency-Key header


def scope_of(key_id: str | None) -> str:
    return key_id or OPEN_SCOPE


def canonical_json(report: BugReport) -> str:
    """The report as stored, and fingerprinted: defaults left out, so a field added later
    (with a default) leaves earlier fingerprints intact. Validating it gives the report."""
    return report.model_dump_json(exclude_defaults=True)


def digest(canonical: str) -> str:
    """The fingerprint of a report's ``canonical_json``."""
    return hashlib.sha256(canonical.encode()).hexdigest()


def fingerprint(report: BugReport) -> str:
    return digest(canonical_json(report))


def lookups(report: BugReport, idempotency_key: str | None) -> list[tuple[LookupKind, str]]:
    """What a submission is recognised by, the report's id first."""
    found: list[tuple[LookupKind, str]] = [("id", report.id)]
    if idempotency_key is not None:
        found.append(("key", idempotency_key))
    return found


class IdConflict(Exception):
    """The scope already used this id (or Idempotency-Key) for a different report."""

    def __init__(self, kind: LookupKind, value: str, request_id: str):
        what = "report id" if kind == "id" else "Idempotency-Key"
        super().__init__(
            f"{what} {value!r} was already used for a different report (request"
            f" {request_id}); send that report unchanged to retry it, or use a new {what}"
        )
        self.kind = kind
        self.value = value
        self.request_id = request_id


def remembered(request_id: str, bug_report_id: str, status: str) -> RequestState:
    """What a lookup still knows of a request whose record expired: its id and last known
    status (a resubmission is answered with them), nothing else."""
    now = datetime.now(UTC)
    state = new_request(request_id, bug_report_id, now)
    return state.model_copy(update={"status": RequestStatus(status or RequestStatus.COMPLETED)})
