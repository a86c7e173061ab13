"""What the GitHub adapters share: request headers and how answers are read safely."""

from __future__ import annotations

import math
from typing import Any

import httpx

USER_AGENT = "ai-pipeline"
API_VERSION = "2022-11-28"
MAX_DETAIL = 500


def json_body(response: httpx.Response) -> Any:
    """The decoded body, or None when it is not JSON."""
    try:
        return response.json()
    except ValueError:  # JSONDecodeError and UnicodeDecodeError are both ValueErrors
        return None


def number(value: str | None) -> float | None:
    """A header's finite number, or None."""
    try:
        parsed = float(value) if value is not None else None
    except ValueError:
        return None
    return parsed if parsed is not None and math.isfinite(parsed) else None


def describe(exc: Exception) -> str:
    text = str(exc)
    return truncate(f"{type(exc).__name__}: {text}" if text else type(exc).__name__)


def truncate(text: str) -> str:
    return text if len(text) <= MAX_DETAIL else text[: MAX_DETAIL - 1] + "…"
