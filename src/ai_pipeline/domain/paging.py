"""The ``pagination`` object of every paged list the API returns."""

from __future__ import annotations

from typing import Any


def pagination(total: int, limit: int, offset: int, shown: int) -> dict[str, Any]:
    return {"total": total, "limit": limit, "offset": offset, "has_more": offset + shown < total}
