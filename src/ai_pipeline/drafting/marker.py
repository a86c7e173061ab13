"""The hidden marker that ties a filed issue to its request, so a retry can find it."""

from __future__ import annotations

import re

_MARKER = re.compile(r"<!-- ai-pipeline:request=([A-Za-z0-9._:\-]+) -->")


def marker(request_id: str) -> str:
    return f"<!-- ai-pipeline:request={request_id} -->"


def request_id_in(body: str | None) -> str | None:
    """The request id an issue body was filed for, or None.

    The last marker counts: ours closes the body, and a reporter who typed a marker into
    their text must not be able to claim another request's issue.
    """
    found = _MARKER.findall(body or "")
    return found[-1] if found else None
