"""Who may call what: route scopes, the client's key, and a short cache of the key store.

Clients send ``X-API-Key: <secret>`` or ``Authorization: Bearer <secret>``. Three modes
(``AI_PIPELINE_AUTH``):

- ``auto``: open while no key was ever created (a fresh ``make run`` needs no setup) and
  closed once one was, revoked ones included (revoking a leaked last key must not open it);
- ``required``: closed, always. With no key in the store (never created, or the store was
  emptied: a flush, an eviction, a failover to an empty replica) every keyed route answers
  503: the store lost its keys, which must close the API, never open it;
- ``open``: no authentication at all, chosen explicitly.

Lookups are cached ``auth_cache_seconds`` per process, so a request costs no store read,
and a new key, a revocation or the first key takes effect within that delay.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from ai_pipeline.api.errors import ApiError
from ai_pipeline.domain.api_keys import ADMIN, READ, SUBMIT, grants, hash_secret
from ai_pipeline.observability.logging import get_logger
from ai_pipeline.ports import ApiKey, KeyStore

log = get_logger(__name__)

HEALTH_PATH = "/api/v1/health"
# Always open: probes and load balancers carry no key; the API's documentation is public;
# an unsubscribe link is signed (its route checks the signature).
OPEN_PATHS = frozenset(
    {
        HEALTH_PATH,
        "/health",
        "/docs",
        "/docs/oauth2-redirect",
        "/redoc",
        "/openapi.json",
        "/api/v1/unsubscribe",
    }
)
PROMETHEUS_PATH = "/metrics"
INGEST_PATH = "/api/v1/bug-reports"
# The web console's files hold no data: each page asks the API with the user's own key.
CONSOLE_PREFIX = "/console"
# Hints while a reporter types a title: whoever may submit may see them.
DUPLICATE_HINTS_PATH = "/api/v1/duplicate-candidates"
# GitHub's webhooks carry no key: the route checks GitHub's signature instead.
WEBHOOK_PATHS = frozenset({"/api/v1/webhooks/github"})
READ_METHODS = frozenset({"GET", "HEAD"})
# A reporter's answers (``/api/v1/requests/<id>/replies``): their reply token, or a key
# that may submit.
REQUESTS_PREFIX, REPLIES_SUFFIX = "/api/v1/requests/", "/replies"
# Cached lookups kept at most; past it the cache starts afresh (unknown secrets sprayed at
# the API must not grow it without bound).
CACHE_ENTRIES = 10_000


@dataclass(frozen=True)
class Rule:
    scope: str  # what the key must grant
    limit: str | None  # which hourly limit the request counts against: submit, read, none
    # A header that authorises the request instead of a key, checked by the route itself
    # (a reporter's reply token).
    instead: bytes | None = None


def rule_for(method: str, path: str, metrics_public: bool) -> Rule | None:
    """What a request needs; None for an open route."""
    if path in OPEN_PATHS or path == "/" or path.startswith(CONSOLE_PREFIX):
        return None
    if path in WEBHOOK_PATHS and method == "POST":
        return None
    if path == PROMETHEUS_PATH:
        # Never rate-limited: a scrape every 15 s must not eat a key's hourly budget.
        return None if metrics_public else Rule(READ, None)
    if path == INGEST_PATH and method == "POST":
        return Rule(SUBMIT, SUBMIT)
    if path == DUPLICATE_HINTS_PATH and method in READ_METHODS:
        return Rule(SUBMIT, READ)
    if method == "POST" and _is_replies(path):
        return Rule(SUBMIT, SUBMIT, instead=b"x-reply-token")
    if method in READ_METHODS and path.startswith("/api/v1/"):
        return Rule(READ, READ)
    return Rule(ADMIN, None)  # whatever else: no route of today, so no client of today


def _is_replies(path: str) -> bool:
    if not (path.startswith(REQUESTS_PREFIX) and path.endswith(REPLIES_SUFFIX)):
        return False
    request_id = path[len(REQUESTS_PREFIX) : len(path) - len(REPLIES_SUFFIX)]
    return bool(request_id) and "/" not in request_id


class Refused(ApiError):
    """A request turned away; ``reason`` labels the log line and the metric."""

    def __init__(self, error: ApiError, reason: str, key_id: str | None = None):
        super().__init__(error.status, error.message, error.code, error.details, error.headers)
        self.reason = reason
        self.key_id = key_id


def unauthorized(reason: str, message: str, key_id: str | None = None) -> Refused:
    error = ApiError(401, message, headers={"WWW-Authenticate": 'Bearer realm="ai-pipeline"'})
    return Refused(error, reason, key_id)


def presented_secret(headers: Iterable[tuple[bytes, bytes]]) -> str | None:
    """The secret of ``X-API-Key``, else of ``Authorization: Bearer``; None without one."""
    bearer = None
    for name, value in headers:
        if name == b"x-api-key":
            return value.decode("latin-1").strip() or None
        if name == b"authorization":
            scheme, _, token = value.decode("latin-1").partition(" ")
            if scheme.lower() == "bearer" and token.strip():
                bearer = token.strip()
    return bearer


class KeyCache:
    """The key store's answers, each kept ``ttl`` seconds (negative answers too).
    ``changed(any_keys)`` is called when whether any key exists flips."""

    def __init__(
        self,
        store: KeyStore,
        ttl: float,
        clock: Callable[[], float] = time.monotonic,
        changed: Callable[[bool], None] | None = None,
    ):
        self._store = store
        self._ttl = ttl
        self._clock = clock
        self._changed = changed
        self._active: tuple[float, bool] | None = None  # (until, any key ever created)
        self._keys: dict[str, tuple[float, ApiKey | None]] = {}

    async def any_keys(self) -> bool:
        now = self._clock()
        if self._active is not None and now < self._active[0]:
            return self._active[1]
        active = await self._store.any_keys()
        if self._active is not None and self._active[1] != active and self._changed:
            self._changed(active)
        self._active = (now + self._ttl, active)
        return active

    async def by_hash(self, secret_hash: str) -> ApiKey | None:
        now = self._clock()
        cached = self._keys.get(secret_hash)
        if cached is not None and now < cached[0]:
            return cached[1]
        key = await self._store.by_hash(secret_hash)
        if len(self._keys) >= CACHE_ENTRIES:
            self._keys.clear()
        self._keys[secret_hash] = (now + self._ttl, key)
        return key


AUTO, REQUIRED, OPEN = "auto", "required", "open"
NO_KEYS_MESSAGE = (
    "no API key is configured and AI_PIPELINE_AUTH=required: the service refuses every"
    " keyed request until an operator restores the keys (see the runbook)"
)


def announce_mode(mode: str, any_keys: bool) -> None:
    """Say in the log whether the API is open, closed, or shut for lack of keys."""
    if mode == OPEN:
        log.warning(
            "api_open_by_setting",
            message="AI_PIPELINE_AUTH=open: every route is open to anyone who can reach it",
        )
    elif any_keys:
        log.info("api_keys_required", mode=mode)
    elif mode == REQUIRED:
        log.error("api_closed_no_keys", message=NO_KEYS_MESSAGE)
    else:
        log.warning(
            "api_open_no_keys",
            message="no API key exists: every route is open to anyone who can reach it;"
            " create one with `ai-pipeline keys create`, and set AI_PIPELINE_AUTH=required"
            " wherever the service is deployed",
        )


class Authenticator:
    def __init__(self, store: KeyStore, ttl: float, mode: str = AUTO):
        self.mode = mode
        self.keys = KeyCache(store, ttl, changed=lambda active: announce_mode(mode, active))

    async def start(self) -> None:
        """Say at start whether the API is open."""
        announce_mode(self.mode, self.mode != OPEN and await self.keys.any_keys())

    async def sees_everything(self, headers: Iterable[tuple[bytes, bytes]]) -> bool:
        """On an open route that shows more to ``admin`` (health): whether this caller is
        one (or the service is open). Never refuses: the route answers either way."""
        if self.mode == OPEN:
            return True
        if not await self.keys.any_keys():
            return self.mode == AUTO
        secret = presented_secret(headers)
        key = None if secret is None else await self.keys.by_hash(hash_secret(secret))
        return key is not None and key.revoked_at is None and grants(key, ADMIN)

    async def authenticate(
        self, headers: Iterable[tuple[bytes, bytes]], rule: Rule
    ) -> ApiKey | None:
        """The caller's key, None while the service is open; ``Refused`` otherwise."""
        if self.mode == OPEN:
            return None
        if not await self.keys.any_keys():
            if self.mode == REQUIRED:
                raise Refused(ApiError(503, NO_KEYS_MESSAGE), "no_keys")
            return None
        secret = presented_secret(headers)
        if secret is None:
            raise unauthorized("missing", "an API key is required (X-API-Key or Bearer)")
        key = await self.keys.by_hash(hash_secret(secret))
        if key is None:
            raise unauthorized("unknown", "the API key is not valid")
        if key.revoked_at is not None:
            raise unauthorized("revoked", "the API key was revoked", key.key_id)
        if not grants(key, rule.scope):
            message = f"this API key lacks the {rule.scope!r} scope"
            raise Refused(ApiError(403, message), "scope", key.key_id)
        return key
