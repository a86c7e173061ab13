"""How the GitHub tracker authenticates: with a fixed token, or as a GitHub App.

An App signs a short-lived JWT with its private key and exchanges it for an installation
token, which GitHub lets live an hour; the token is cached and refreshed a margin before it
expires. The key, the JWTs and the tokens are kept out of every message, exception and repr.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any, NoReturn, Protocol

import httpx
import jwt
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey

from ai_pipeline.adapters.trackers.github_http import (
    API_VERSION,
    USER_AGENT,
    describe,
    json_body,
    number,
    truncate,
)
from ai_pipeline.domain.errors import PermanentError, TransientError

# Anything else would be refused by the HTTP layer, whose error text can echo the header.
_TOKEN = re.compile(r"[\x21-\x7e]+")
# GitHub's advice: backdate iat a minute in case our clock runs ahead of GitHub's.
_CLOCK_DRIFT = 60
# exp may be at most 10 minutes after iat; with the backdating that leaves 9 from now.
_JWT_LIFETIME = 540
_APP_HINT = (
    "check AI_PIPELINE_GITHUB_APP_ID, the private key and AI_PIPELINE_GITHUB_APP_INSTALLATION_ID"
)


class GitHubAuth(Protocol):
    async def authorization(self, client: httpx.AsyncClient) -> str:
        """The Authorization header value for the next request."""
        ...

    def invalidate(self) -> bool:
        """Called after GitHub answered 401: forget a cached installation token. True when
        the next request will carry a new credential (worth sending again)."""
        ...

    def secrets(self) -> tuple[str, ...]:
        """Strings that must never appear in a message."""
        ...

    async def bot_login(self, client: httpx.AsyncClient) -> str | None:
        """The login an App's issues are created by ("<slug>[bot]"); None for a user's
        token (GET /user says whose) or when GitHub will not say."""
        ...


def check_token(token: str) -> str:
    """The token, stripped; ValueError (not echoing it) if it cannot go in a header."""
    token = token.strip()  # a token read from a file often ends in a newline
    if not _TOKEN.fullmatch(token):
        raise ValueError("the GitHub token must be non-empty printable ASCII without spaces")
    return token


class TokenAuth:
    """A personal access token (or any fixed token), sent as is."""

    def __init__(self, token: str):
        self._token = check_token(token)

    def __repr__(self) -> str:
        return "TokenAuth(token=[redacted])"

    async def authorization(self, client: httpx.AsyncClient) -> str:
        return f"Bearer {self._token}"

    def invalidate(self) -> bool:
        return False  # a fixed token cannot be renewed: sending again would fail again

    async def bot_login(self, client: httpx.AsyncClient) -> str | None:
        return None  # a user's token: GET /user says whose

    def secrets(self) -> tuple[str, ...]:
        return (self._token,)


class AppAuth:
    """A GitHub App installation: installation tokens bought with JWTs, cached until
    ``refresh_margin`` seconds before they expire (by ``clock``)."""

    def __init__(
        self,
        api_url: str,
        app_id: int,
        private_key_pem: str,
        installation_id: int,
        *,
        refresh_margin: float = 300.0,
        clock: Callable[[], float] = time.time,
    ):
        if app_id < 1 or installation_id < 1:
            raise ValueError("the GitHub App id and installation id must be positive")
        if refresh_margin < 0:
            raise ValueError("refresh_margin must not be negative")
        if not api_url.startswith(("https://", "http://")):
            # Otherwise every exchange would fail the same way, retried as if transient.
            raise ValueError("api_url must be an http(s) URL such as https://api.github.com")
        self._key = _load_private_key(private_key_pem)
        self._api_url = api_url.rstrip("/")
        self._app_id = app_id
        self._installation_id = installation_id
        self._refresh_margin = refresh_margin
        self._clock = clock
        self._lock = asyncio.Lock()  # concurrent callers wait for one exchange
        self._token: str | None = None
        self._expires_at = 0.0
        self._refresh_at = 0.0
        self._jwt: str | None = None

    def __repr__(self) -> str:
        return (
            f"AppAuth(api_url={self._api_url!r}, app_id={self._app_id}, "
            f"installation_id={self._installation_id})"
        )

    async def authorization(self, client: httpx.AsyncClient) -> str:
        async with self._lock:
            if self._token is None or self._clock() >= self._refresh_at:
                try:
                    self._token, self._expires_at = await self._exchange(client)
                except TransientError:
                    # Refreshing early leaves time to fail: a token not yet expired still
                    # serves, and the next call tries again.
                    if self._token is None or self._clock() >= self._expires_at:
                        raise
                else:
                    self._refresh_at = self._expires_at - self._refresh_margin
            return f"Bearer {self._token}"

    def invalidate(self) -> bool:
        self._token = None
        return True

    async def bot_login(self, client: httpx.AsyncClient) -> str | None:
        self._jwt = self._sign()
        try:
            response = await client.get(
                f"{self._api_url}/app", headers=self._jwt_headers(), follow_redirects=False
            )
        except httpx.HTTPError as exc:
            raise self._transient(f"could not ask GitHub for the App ({describe(exc)})") from exc
        if response.status_code >= 500:
            raise self._transient(f"GitHub could not show the App ({_detail(response)})")
        data = json_body(response) if response.is_success else None
        slug = data.get("slug") if isinstance(data, dict) else None
        return f"{slug}[bot]" if isinstance(slug, str) and slug else None

    def secrets(self) -> tuple[str, ...]:
        return tuple(secret for secret in (self._token, self._jwt) if secret)

    async def _exchange(self, client: httpx.AsyncClient) -> tuple[str, float]:
        """A fresh installation token and when it expires (a Unix time)."""
        url = f"{self._api_url}/app/installations/{self._installation_id}/access_tokens"
        self._jwt = self._sign()
        try:
            # No redirects: the JWT must go to the configured API and nowhere else.
            response = await client.post(url, headers=self._jwt_headers(), follow_redirects=False)
        except httpx.HTTPError as exc:
            raise self._transient(
                f"could not get a GitHub App installation token from {self._api_url} "
                f"({describe(exc)})"
            ) from exc
        if not response.is_success:
            self._raise_for(response)
        return self._token_in(response)

    def _jwt_headers(self) -> dict[str, str]:
        return {
            "Authorization": f"Bearer {self._jwt}",
            "Accept": "application/vnd.github+json",
            "X-GitHub-Api-Version": API_VERSION,
            "User-Agent": USER_AGENT,
        }

    def _sign(self) -> str:
        now = int(self._clock())
        claims = {"iat": now - _CLOCK_DRIFT, "exp": now + _JWT_LIFETIME, "iss": str(self._app_id)}
        return jwt.encode(claims, self._key, algorithm="RS256")

    def _token_in(self, response: httpx.Response) -> tuple[str, float]:
        data = json_body(response)
        token = data.get("token") if isinstance(data, dict) else None
        expires_at = _timestamp(data.get("expires_at")) if isinstance(data, dict) else None
        if not isinstance(token, str) or not _TOKEN.fullmatch(token) or expires_at is None:
            raise self._transient(
                f"GitHub answered {response.status_code} to the installation token request "
                "without a usable token and expiry"
            )
        return token, expires_at

    def _raise_for(self, response: httpx.Response) -> NoReturn:
        status, detail = response.status_code, _detail(response)
        headers = response.headers
        limited = "retry-after" in headers or headers.get("x-ratelimit-remaining") == "0"
        if status >= 500 or status == 429 or (status == 403 and limited):
            raise self._transient(
                f"GitHub could not issue an installation token ({detail})",
                _wait(headers.get("retry-after")),
            )
        if status == 404:
            refused = (
                f"GitHub does not know installation {self._installation_id} "
                f"of app {self._app_id} ({detail})"
            )
        else:
            refused = f"GitHub refused to issue an installation token ({detail})"
        raise PermanentError(self._redact(f"{refused}: {_APP_HINT}"))

    def _transient(self, message: str, retry_after: float | None = None) -> TransientError:
        return TransientError(self._redact(message), retry_after=retry_after)

    def _redact(self, text: str) -> str:
        # Nothing here interpolates a secret, but server text is untrusted.
        for secret in self.secrets():
            text = text.replace(secret, "[redacted]")
        return text


def _load_private_key(pem: str) -> RSAPrivateKey:
    """The App's RSA private key; a ValueError that does not echo it if it is unreadable."""
    # A key pasted into an environment variable often arrives with its newlines escaped;
    # a real PEM never contains a backslash, so unescaping cannot damage one.
    text = pem.strip().replace("\\n", "\n")
    try:
        key = serialization.load_pem_private_key(text.encode(), password=None)
    except (ValueError, TypeError, UnsupportedAlgorithm):
        # "from None": the cause says nothing useful and must not be able to quote the key.
        raise ValueError(
            "the GitHub App private key is unreadable: expected the unencrypted PEM file "
            "GitHub generated (-----BEGIN RSA PRIVATE KEY-----)"
        ) from None
    if not isinstance(key, RSAPrivateKey):
        raise ValueError("the GitHub App private key must be an RSA key, as GitHub issues")
    return key


def _detail(response: httpx.Response) -> str:
    data = json_body(response)
    message = data.get("message") if isinstance(data, dict) else None
    text = f"{response.status_code} {message or response.reason_phrase}".strip()
    return truncate(text)


def _timestamp(value: Any) -> float | None:
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value).timestamp()  # "…Z" parses since Python 3.11
    except ValueError:
        return None


def _wait(value: str | None) -> float | None:
    seconds = number(value)
    return max(0.0, seconds) if seconds is not None else None
