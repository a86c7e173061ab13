"""Signed values the service hands out: each report's reply token, and unsubscribe links.

Both are HMAC-SHA256 under the service's signing key, so nothing is stored to check them:
the token is recomputed from the request id and compared in constant time. Neither the
state store nor the log holds a token that could be replayed (a stored hash would not be
needed, and a notification sent weeks later can still carry the token). Rotating the key
(``AI_PIPELINE_SIGNING_SECRET``) invalidates every token and link handed out before.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Awaitable, Callable
from urllib.parse import quote, urlencode

REPLY_TOKEN_PREFIX = "rt_"  # noqa: S105 (a prefix, not a secret)


def _mac(key: bytes, purpose: str, value: str) -> str:
    digest = hmac.new(key, f"{purpose}|{value}".encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")


def reply_token(key: bytes, request_id: str) -> str:
    return REPLY_TOKEN_PREFIX + _mac(key, "reply", request_id)


def reply_token_matches(key: bytes, request_id: str, presented: str) -> bool:
    return hmac.compare_digest(reply_token(key, request_id).encode(), presented.encode())


def address_key(address: str) -> str:
    """How an address is known to the opt-out list: its hash, case-blind."""
    return hashlib.sha256(address.strip().lower().encode()).hexdigest()


def unsubscribe_params(key: bytes, address: str) -> dict[str, str]:
    encoded = base64.urlsafe_b64encode(address.strip().lower().encode()).decode().rstrip("=")
    return {"a": encoded, "s": _mac(key, "unsubscribe", encoded)}


def unsubscribed_address(key: bytes, a: str, s: str) -> str | None:
    """The address an unsubscribe link names, or None when its signature is wrong."""
    if not hmac.compare_digest(_mac(key, "unsubscribe", a).encode(), s.encode()):
        return None
    try:
        return base64.urlsafe_b64decode(a + "=" * (-len(a) % 4)).decode()
    except (ValueError, UnicodeDecodeError):
        return None


class Links:
    """The service's signed links, for its public URL; the key is read once, when first
    needed (from the settings, or made once and kept in the conversation store)."""

    def __init__(self, base_url: str, key_source: Callable[[], Awaitable[bytes]]):
        self.base_url = base_url.rstrip("/")
        self._key_source = key_source
        self._key: bytes | None = None

    async def key(self) -> bytes:
        if self._key is None:
            self._key = await self._key_source()
        return self._key

    async def reply_token(self, request_id: str) -> str:
        return reply_token(await self.key(), request_id)

    async def reply_token_matches(self, request_id: str, presented: str) -> bool:
        return reply_token_matches(await self.key(), request_id, presented)

    async def reply_url(self, request_id: str) -> str:
        """The console page with the reply form; the token rides in the fragment, which
        browsers never send to a server (so it stays out of access logs and referrers)."""
        token = await self.reply_token(request_id)
        return f"{self.base_url}/console/request.html?id={quote(request_id)}#token={token}"

    async def unsubscribe_url(self, address: str) -> str:
        params = unsubscribe_params(await self.key(), address)
        return f"{self.base_url}/api/v1/unsubscribe?{urlencode(params)}"

    async def unsubscribed_address(self, a: str, s: str) -> str | None:
        return unsubscribed_address(await self.key(), a, s)
