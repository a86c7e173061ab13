"""``X-Hub-Signature-256``: HMAC-SHA256 of the raw body, keyed with the webhook secret.

GitHub also sends ``X-Hub-Signature`` (SHA-1) for old receivers; it is never accepted.
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Literal

PREFIX = "sha256="
Refusal = Literal["missing", "unsupported", "mismatch"]


def sign(secret: bytes, body: bytes) -> str:
    return PREFIX + hmac.new(secret, body, hashlib.sha256).hexdigest()


def check(secret: bytes, body: bytes, header: str | None) -> Refusal | None:
    """Why the signature is refused, or None when it is GitHub's for this body."""
    if not header:
        return "missing"
    if not header.startswith(PREFIX):
        return "unsupported"
    # Constant time: how much of a forged signature matches must not show in the timing.
    if not hmac.compare_digest(sign(secret, body).encode(), header.strip().encode()):
        return "mismatch"
    return None
