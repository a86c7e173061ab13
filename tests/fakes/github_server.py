"""An in-memory GitHub REST issues API, served over real HTTP for tests.

    with run_fake_github(token="t") as gh:
        tracker = GitHubTracker(api_url=gh.url, repository=gh.repository, token="t")
        gh.fail_next(status=502, times=2)   # the next two requests fail
        gh.delay_next(seconds=2.0)          # the next request stalls (a POST after storing)
        gh.reset_connection_next()          # the next request gets a broken connection
        gh.chaos(0.1, ["502", "reset"], seed=7)  # random faults, for soak tests
        gh.fail_next(502, times=OUTAGE); gh.calm()  # an outage, and its end
        gh.list_lag = 3.0                   # new issues and comments show in lists 3 s late
        ...
        gh.issues, gh.requests              # what was stored, what was asked

It keeps one repository's issues (and pull requests, which the issues API lists too) with
their labels, milestones and comments; checks the token (the fixed one, or an installation
token it issued to a configured GitHub App) and records who created what (``GET /user``,
``GET /app``); counts a primary rate limit; answers in GitHub's shapes, pages like GitHub,
filters lists by ``creator`` and ``since`` like GitHub (``since`` compares the last update),
shows what was just created in lists only after ``list_lag`` seconds (GitHub's
read-after-write lag), and records every request. Queued faults are consumed in the order
they were queued, one per matching request, and take precedence over chaos.
"""

from __future__ import annotations

import asyncio
import math
import random
import re
import secrets
import socket
import string
import threading
import time
import zlib
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager, suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http import HTTPStatus
from typing import Any, Literal, TypeVar
from urllib.parse import quote

import jwt
import uvicorn
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey
from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import JSONResponse, Response
from starlette.types import Receive, Scope, Send

from ai_pipeline.drafting.marker import marker

DOCS_URL = "https://docs.github.com/rest"
# Service settings that lift GitHub's content-creation pacing, for tests filing hundreds
# of issues a minute against this fake (the pacing itself is tested on its own).
UNPACED = {
    "AI_PIPELINE_GITHUB_CREATIONS_PER_MINUTE": "1000000",
    "AI_PIPELINE_GITHUB_CREATIONS_PER_HOUR": "1000000",
}
MAX_BODY = 65_536  # GitHub refuses longer issue and comment bodies
SECONDARY_LIMIT = (
    "You have exceeded a secondary rate limit. Please wait a few minutes before you try again."
)
PRIMARY_LIMIT = "API rate limit exceeded for user ID 1."
BAD_JWT = "A JSON web token could not be decoded"
# ``times`` of a fault that lasts until ``clear_faults``: an outage.
OUTAGE = 1_000_000_000
# Who the fixed token belongs to, and the slug of a configured GitHub App (its issues are
# created by "<slug>[bot]").
TOKEN_LOGIN = "ai-pipeline-bot"
APP_SLUG = "ai-pipeline"
NOT_FOR_INTEGRATIONS = "Resource not accessible by integration"
# Far above what any test sends, so only tests that call set_rate_limit ever meet the limit.
DEFAULT_RATE_LIMIT = 1_000_000
RATE_LIMIT_WINDOW = 3600.0  # GitHub's primary limit is per hour
MAX_JWT_LIFETIME = 600  # GitHub refuses an app JWT whose exp is more than 10 minutes past iat
CHAOS_KINDS = (
    "500",
    "502",
    "secondary_rate_limit",
    "429",
    "reset",
    "reset_after_create",
    "timeout_after_create",
)
_CREATE_ONLY = frozenset({"reset_after_create", "timeout_after_create"})
_COLOR = re.compile(r"[0-9A-Fa-f]{6}")
_TOKEN_ALPHABET = string.ascii_letters + string.digits

_T = TypeVar("_T")


@dataclass(frozen=True)
class RecordedRequest:
    method: str
    path: str  # relative to the API base URL, e.g. "/repos/acme/widgets/issues"
    query: dict[str, str]
    headers: dict[str, str]  # lower-case names
    json: Any  # the decoded body; None when there was none or it was not JSON


@dataclass
class _Fault:
    times: int
    method: str | None
    status: int | None = None
    headers: dict[str, str] = field(default_factory=dict)
    body: dict[str, Any] = field(default_factory=dict)
    delay: float = 0.0
    reset: bool = False
    after_create: bool = False

    def matches(self, method: str) -> bool:
        return self.method is None or self.method.upper() == method


@dataclass
class _Then:
    """What an admitted request still owes: a stall, a dropped connection, headers to add."""

    delay: float = 0.0
    drop: bool = False
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class _Chaos:
    probability: float
    kinds: tuple[str, ...]
    rng: random.Random


@dataclass
class _Budget:
    limit: int
    window: float
    resets_at: float
    used: int = 0


@dataclass(frozen=True)
class _App:
    app_id: int
    public_key: RSAPublicKey
    installation_id: int
    token_ttl: float


@dataclass
class _Label:
    id: int
    name: str
    color: str
    description: str | None


@dataclass
class _Milestone:
    number: int
    title: str
    state: str
    created_at: float


@dataclass
class _Comment:
    id: int
    body: str
    created_at: float
    user: str = TOKEN_LOGIN
    listed_at: float = 0.0  # shown in lists from then on (read-after-write lag)


@dataclass
class _Issue:
    number: int
    title: str
    body: str | None
    labels: list[str]
    assignees: list[str]
    state: str
    pull_request: bool
    created_at: float
    updated_at: float
    closed_at: float | None = None
    milestone: int | None = None
    comments: list[_Comment] = field(default_factory=list)
    user: str = TOKEN_LOGIN
    listed_at: float = 0.0  # shown in lists from then on (read-after-write lag)


class _DroppedConnection(Response):
    """Starts an answer and never finishes it.

    uvicorn then closes the connection (logging "ASGI callable returned without completing
    response."), so the client sees a broken connection, an ``httpx.RemoteProtocolError``,
    rather than an HTTP status it could act on.
    """

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send(
            {"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"1")]}
        )


class FakeGitHub:
    """State and routes of the fake; ``run_fake_github`` serves it."""

    def __init__(
        self, token: str = "test-token", repository: str = "acme/widgets", prefix: str = ""
    ):
        self.token = token
        self.repository = repository
        self.prefix = prefix.rstrip("/")
        self.url = ""  # the API base URL, set once served
        self.web_url = ""  # where html_url points
        self.has_issues = True
        self.assignable: set[str] | None = None  # None: anyone may be assigned
        self.private = True  # what GET /repos/{owner}/{repo} says
        # "drop" is GitHub's way with a token that lacks push access: the issue is filed
        # without the labels the repository does not have.
        self.unknown_labels: Literal["create", "drop"] = "create"
        self.chaos_stall = 5.0  # seconds a "timeout_after_create" answer stalls
        # Seconds before an issue or comment created over HTTP shows in list answers
        # (fetching it by number shows it at once), as GitHub's lists lag behind writes.
        self.list_lag = 0.0
        self._changed = threading.Condition()  # guards all state below; notified on change
        self._issues: list[_Issue] = []
        self._requests: list[RecordedRequest] = []
        self._faults: list[_Fault] = []
        self._labels: dict[str, _Label] = {}  # by lower-case name: GitHub ignores case
        self._milestones: dict[int, _Milestone] = {}
        self._comment_count = 0
        self._chaos: _Chaos | None = None
        self._injected: Counter[str] = Counter()
        self._budget = _Budget(DEFAULT_RATE_LIMIT, RATE_LIMIT_WINDOW, 0.0)
        self._app: _App | None = None
        self._installation_tokens: dict[str, float] = {}  # token -> when it expires
        self._started = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping: asyncio.Event | None = None
        self.app = self._build_app()

    # --- what tests read -------------------------------------------------------------

    @property
    def issues(self) -> list[dict[str, Any]]:
        """Issues and pull requests as GitHub shows them, oldest first."""
        with self._changed:
            return [self._render(issue) for issue in self._issues]

    @property
    def requests(self) -> list[RecordedRequest]:
        with self._changed:
            return list(self._requests)

    @property
    def labels(self) -> list[dict[str, Any]]:
        """The repository's labels as GitHub shows them, oldest first."""
        with self._changed:
            return [self._label_json(label) for label in self._labels.values()]

    @property
    def injected(self) -> Counter[str]:
        """How often chaos injected each kind of fault."""
        with self._changed:
            return Counter(self._injected)

    @property
    def tokens_issued(self) -> int:
        """Installation tokens handed out to the configured GitHub App."""
        with self._changed:
            return len(self._installation_tokens)

    @property
    def rate_limit(self) -> dict[str, int]:
        """The primary rate-limit budget, as GitHub's /rate_limit shows its "core" part."""
        with self._changed:
            return _rate_numbers(_refilled(self._budget, time.time()))

    def posts(self, path_suffix: str = "/issues") -> list[RecordedRequest]:
        """POST requests whose path ends with ``path_suffix`` (issue creations by default)."""
        return [r for r in self.requests if r.method == "POST" and r.path.endswith(path_suffix)]

    def issue(self, number: int) -> dict[str, Any] | None:
        with self._changed:
            found = self._find(number)
            return self._render(found) if found else None

    def comments(self, number: int) -> list[dict[str, Any]]:
        """The comments on issue ``number``, oldest first; KeyError if there is no such issue."""
        with self._changed:
            issue = self._existing(number)
            return [self._comment_json(issue, comment) for comment in issue.comments]

    def issues_for(self, request_id: str) -> list[dict[str, Any]]:
        """Issues (not pull requests) whose body carries ``request_id``'s marker."""
        wanted = marker(request_id)
        return [
            issue
            for issue in self.issues
            if "pull_request" not in issue and wanted in (issue["body"] or "")
        ]

    def wait_for(self, condition: Callable[[FakeGitHub], bool], timeout: float) -> bool:
        """Block until ``condition(self)`` holds (True) or ``timeout`` seconds pass (False)."""
        with self._changed:
            return self._changed.wait_for(lambda: condition(self), timeout=timeout)

    # --- what tests set up -----------------------------------------------------------

    def add_issue(
        self,
        title: str = "An issue",
        body: str | None = "",
        labels: Iterable[str] = (),
        *,
        assignees: Iterable[str] = (),
        state: str = "open",
        pull_request: bool = False,
        user: str = TOKEN_LOGIN,
    ) -> dict[str, Any]:
        """Store an issue (or a pull request) directly, without an HTTP call; ``user`` is
        who opened it (by default the fixed token's owner, as if the pipeline had)."""
        with self._changed:
            issue = self._store(
                title, body, list(labels), list(assignees), state, pull_request, user=user
            )
            return self._render(issue)

    def add_comments(self, number: int, bodies: Iterable[str], user: str = TOKEN_LOGIN) -> None:
        """Comment on issue ``number`` directly (many at once); KeyError if there is none."""
        with self._changed:
            issue = self._existing(number)
            for body in bodies:
                self._new_comment(issue, body, user, lag=0.0)
            self._changed.notify_all()

    def close_issue(self, number: int) -> dict[str, Any]:
        """Close issue ``number`` as a person would; KeyError if there is no such issue."""
        with self._changed:
            issue = self._existing(number)
            now = time.time()
            issue.state, issue.closed_at, issue.updated_at = "closed", now, now
            self._changed.notify_all()
            return self._render(issue)

    def add_label(
        self, name: str, color: str = "ededed", description: str | None = None
    ) -> dict[str, Any]:
        """Create a label directly; ValueError for a bad colour or a name already taken."""
        if not _COLOR.fullmatch(color):
            raise ValueError("color must be 6 hex digits without '#'")
        with self._changed:
            if name.lower() in self._labels:
                raise ValueError(f"label {name!r} already exists")
            return self._label_json(self._new_label(name, color, description))

    def add_milestone(self, title: str, state: str = "open") -> int:
        """Create a milestone directly and return its number (numbering starts at 1)."""
        if state not in ("open", "closed"):
            raise ValueError("state must be 'open' or 'closed'")
        with self._changed:
            number = len(self._milestones) + 1
            self._milestones[number] = _Milestone(number, title, state, time.time())
            return number

    def set_rate_limit(self, limit: int, reset_in: float = RATE_LIMIT_WINDOW) -> None:
        """Start a fresh primary rate-limit window: ``limit`` requests, then 403s until it
        ends ``reset_in`` seconds from now; every later window lasts as long and refills."""
        if limit < 0 or reset_in <= 0:
            raise ValueError("limit must be at least 0 and reset_in positive")
        with self._changed:
            self._budget = _Budget(limit, reset_in, time.time() + reset_in)

    def revoke_installation_tokens(self) -> None:
        """Tokens already issued stop working, as when an installation's are revoked."""
        with self._changed:
            self._installation_tokens.clear()

    def configure_app(
        self, app_id: int, public_key_pem: str, installation_id: int, token_ttl: float = 3600
    ) -> None:
        """Let a GitHub App exchange JWTs signed with the matching private key for
        installation tokens of ``installation_id``, each valid ``token_ttl`` seconds."""
        if token_ttl <= 0:
            raise ValueError("token_ttl must be positive")
        key = serialization.load_pem_public_key(public_key_pem.encode())
        if not isinstance(key, RSAPublicKey):
            raise ValueError("a GitHub App key is an RSA key")
        with self._changed:
            self._app = _App(app_id, key, installation_id, token_ttl)

    def calm(self) -> None:
        """Drop every queued fault and stop chaos: the end of an outage."""
        with self._changed:
            self._faults.clear()
            self._chaos = None

    def fail_next(
        self,
        status: int = 500,
        times: int = 1,
        *,
        method: str | None = None,
        retry_after: int | None = None,
        headers: dict[str, str] | None = None,
        message: str | None = None,
        errors: list[Any] | None = None,
    ) -> None:
        """Answer the next ``times`` requests (of ``method``, if given) with ``status``."""
        extra = dict(headers or {})
        if retry_after is not None:
            extra["Retry-After"] = str(retry_after)
        self._queue(_status_fault(status, extra, message, errors, times=times, method=method))

    def rate_limit_next(
        self,
        times: int = 1,
        *,
        primary: bool = False,
        retry_after: int | None = 60,
        reset_in: float = 60.0,
        method: str | None = None,
    ) -> None:
        """A 403 rate-limit answer: secondary (Retry-After, if given) or primary (reset)."""
        if primary:
            headers = {
                "X-RateLimit-Limit": "5000",
                "X-RateLimit-Remaining": "0",
                "X-RateLimit-Used": "5000",
                "X-RateLimit-Reset": str(int(time.time() + reset_in)),
            }
            self.fail_next(403, times, method=method, headers=headers, message=PRIMARY_LIMIT)
        else:
            self.fail_next(
                403, times, method=method, retry_after=retry_after, message=SECONDARY_LIMIT
            )

    def validation_error_next(
        self,
        field: str = "labels",
        code: str = "invalid",
        times: int = 1,
        *,
        value: Any = None,
        method: str | None = "POST",
    ) -> None:
        """GitHub's 422 "Validation Failed" with one error object."""
        error = {"resource": "Issue", "field": field, "code": code}
        if value is not None:
            error["value"] = value
        self.fail_next(422, times, method=method, message="Validation Failed", errors=[error])

    def delay_next(self, seconds: float, times: int = 1, *, method: str | None = None) -> None:
        """Stall the next requests; a create stalls after storing, so its outcome is unknown."""
        self._queue(_Fault(times, method, delay=seconds))

    def reset_connection_next(
        self, times: int = 1, *, method: str | None = None, after_create: bool = False
    ) -> None:
        """Break the connection of the next requests instead of answering them.

        Nothing is acted on, except with ``after_create`` a POST /issues, which stores the
        issue first: the client cannot know whether it was created.
        """
        self._queue(_Fault(times, method, reset=True, after_create=after_create))

    def chaos(self, probability: float, kinds: Sequence[str], seed: int) -> None:
        """From now on inject a random fault of ``kinds`` (see CHAOS_KINDS) into each
        request with ``probability``; the draws repeat for the same ``seed`` and requests."""
        unknown = set(kinds) - set(CHAOS_KINDS)
        if not kinds or unknown:
            raise ValueError(f"kinds must be a non-empty choice of {CHAOS_KINDS}")
        if not 0.0 <= probability <= 1.0:
            raise ValueError("probability must be between 0 and 1")
        with self._changed:
            self._chaos = _Chaos(probability, tuple(kinds), random.Random(seed))

    def reset(self) -> None:
        """Forget all state, faults and settings, so one server can serve many tests."""
        with self._changed:
            self._issues.clear()
            self._requests.clear()
            self._faults.clear()
            self._labels.clear()
            self._milestones.clear()
            self._comment_count = 0
            self._chaos = None
            self._injected.clear()
            self._budget = _Budget(DEFAULT_RATE_LIMIT, RATE_LIMIT_WINDOW, 0.0)
            self._app = None
            self._installation_tokens.clear()
            self.has_issues = True
            self.assignable = None
            self.private = True
            self.unknown_labels = "create"
            self.chaos_stall = 5.0
            self.list_lag = 0.0
            self._changed.notify_all()

    # --- serving ---------------------------------------------------------------------

    def _build_app(self) -> FastAPI:
        @asynccontextmanager
        async def lifespan(_: FastAPI) -> AsyncIterator[None]:
            self._loop = asyncio.get_running_loop()
            self._stopping = asyncio.Event()
            self._started.set()
            yield

        app = FastAPI(lifespan=lifespan, openapi_url=None, docs_url=None, redoc_url=None)
        router = APIRouter(prefix=self.prefix)
        repo = "/repos/{owner}/{repo}"
        routes: list[tuple[str, Callable[..., Any], str]] = [
            ("", self._get_repository, "GET"),
            ("/issues", self._list_issues, "GET"),
            ("/issues", self._create_issue, "POST"),
            ("/issues/{number}", self._get_issue, "GET"),
            ("/issues/{number}/comments", self._list_comments, "GET"),
            ("/issues/{number}/comments", self._create_comment, "POST"),
            ("/labels", self._list_labels, "GET"),
            ("/labels", self._create_label, "POST"),
            ("/assignees/{login}", self._check_assignee, "GET"),
            ("/milestones/{number}", self._get_milestone, "GET"),
        ]
        for path, endpoint, method in routes:
            router.add_api_route(repo + path, endpoint, methods=[method])
        router.add_api_route("/user", self._get_user, methods=["GET"])
        router.add_api_route("/app", self._get_app, methods=["GET"])
        router.add_api_route(
            "/app/installations/{installation_id}/access_tokens",
            self._create_access_token,
            methods=["POST"],
        )
        app.include_router(router)
        # Registered last, so it only catches what no route above matched.
        app.add_api_route(
            "/{path:path}", self._not_found, methods=["GET", "POST", "PATCH", "PUT", "DELETE"]
        )
        return app

    async def _get_repository(self, request: Request, owner: str, repo: str) -> Response:
        refusal, then, _ = await self._admit(request, owner, repo)
        return refusal or await self._finish(then, JSONResponse(self._repository_json()))

    async def _list_issues(self, request: Request, owner: str, repo: str) -> Response:
        refusal, then, _ = await self._admit(request, owner, repo)
        if refusal is not None:
            return refusal
        query = request.query_params
        state, sort = query.get("state", "open"), query.get("sort", "created")
        since = _since(query.get("since"))
        if state not in ("open", "closed", "all") or sort not in ("created", "updated"):
            return await self._finish(then, _error(422, "Validation Failed"))
        if since is None:
            return await self._finish(then, _error(422, "Validation Failed"))
        creator, now = query.get("creator"), time.time()
        with self._changed:
            chosen = [
                i
                for i in self._issues
                if state in ("all", i.state)
                and i.listed_at <= now
                and i.updated_at >= since
                and creator in (None, i.user)
            ]
            chosen.sort(key=lambda i: (getattr(i, f"{sort}_at"), i.number))
            if query.get("direction", "desc") == "desc":
                chosen.reverse()
            page, links = _paged(request, chosen)
            items = [self._render(i) for i in page]
        return await self._finish(then, JSONResponse(items, headers=links))

    async def _create_issue(self, request: Request, owner: str, repo: str) -> Response:
        refusal, then, payload = await self._admit(request, owner, repo, creating=True)
        login = self._login(request.headers.get("authorization"))
        return refusal or await self._finish(then, self._file(payload, login))

    async def _get_issue(self, request: Request, owner: str, repo: str, number: int) -> Response:
        refusal, then, _ = await self._admit(request, owner, repo)
        if refusal is not None:
            return refusal
        shown = self.issue(number)
        return await self._finish(then, JSONResponse(shown) if shown else _not_found())

    async def _list_comments(
        self, request: Request, owner: str, repo: str, number: int
    ) -> Response:
        refusal, then, _ = await self._admit(request, owner, repo)
        if refusal is not None:
            return refusal
        since = _since(request.query_params.get("since"))
        if since is None:
            return await self._finish(then, _error(422, "Validation Failed"))
        now = time.time()
        with self._changed:
            issue = self._find(number)
            if issue is None:
                return await self._finish(then, _not_found())
            shown = [c for c in issue.comments if c.listed_at <= now and c.created_at >= since]
            page, links = _paged(request, shown)
            items = [self._comment_json(issue, comment) for comment in page]
        return await self._finish(then, JSONResponse(items, headers=links))

    async def _create_comment(
        self, request: Request, owner: str, repo: str, number: int
    ) -> Response:
        refusal, then, payload = await self._admit(request, owner, repo)
        login = self._login(request.headers.get("authorization"))
        return refusal or await self._finish(then, self._comment_on(number, payload, login))

    async def _list_labels(self, request: Request, owner: str, repo: str) -> Response:
        refusal, then, _ = await self._admit(request, owner, repo)
        if refusal is not None:
            return refusal
        with self._changed:
            page, links = _paged(request, list(self._labels.values()))
            items = [self._label_json(label) for label in page]
        return await self._finish(then, JSONResponse(items, headers=links))

    async def _create_label(self, request: Request, owner: str, repo: str) -> Response:
        refusal, then, payload = await self._admit(request, owner, repo)
        return refusal or await self._finish(then, self._label_from(payload))

    async def _check_assignee(
        self, request: Request, owner: str, repo: str, login: str
    ) -> Response:
        refusal, then, _ = await self._admit(request, owner, repo)
        if refusal is not None:
            return refusal
        assignable = self.assignable is None or login in self.assignable
        return await self._finish(then, Response(status_code=204) if assignable else _not_found())

    async def _get_milestone(
        self, request: Request, owner: str, repo: str, number: int
    ) -> Response:
        refusal, then, _ = await self._admit(request, owner, repo)
        if refusal is not None:
            return refusal
        with self._changed:
            found = self._milestones.get(number)
            shown = self._milestone_json(found) if found else None
        return await self._finish(then, JSONResponse(shown) if shown else _not_found())

    async def _get_user(self, request: Request) -> Response:
        refusal, then, _ = await self._admit(request, *self.repository.split("/"))
        if refusal is not None:
            return refusal
        if self._login(request.headers.get("authorization")) != TOKEN_LOGIN:
            return await self._finish(then, _error(403, NOT_FOR_INTEGRATIONS))
        return await self._finish(then, JSONResponse(_user(TOKEN_LOGIN)))

    async def _get_app(self, request: Request) -> Response:
        # Authenticated by the app's JWT, like the token exchange.
        await self._record(request)
        refusal, then = self._inject(request.method, creating=False)
        if refusal is not None:
            return refusal
        answer = self._verify_jwt(request.headers.get("authorization"))
        with self._changed:
            app = self._app
        if answer is None and app is not None:
            shown = {"id": app.app_id, "slug": APP_SLUG, "name": "AI Pipeline"}
            answer = JSONResponse(shown)
        return await self._finish(then, answer or _error(401, BAD_JWT))

    async def _create_access_token(self, request: Request, installation_id: int) -> Response:
        # Faults and chaos apply, but not the token check: the app's JWT is checked instead.
        await self._record(request)
        refusal, then = self._inject(request.method, creating=False)
        if refusal is not None:
            return refusal
        answer = self._verify_jwt(request.headers.get("authorization"))
        return await self._finish(then, answer or self._issue_token(installation_id))

    async def _not_found(self, request: Request, path: str) -> Response:
        refusal, then, _ = await self._admit(request, *self.repository.split("/"))
        return refusal or await self._finish(then, _not_found())

    async def _admit(
        self, request: Request, owner: str, repo: str, *, creating: bool = False
    ) -> tuple[Response | None, _Then, Any]:
        """Record the request; then a fault, the token, the rate limit and the repository
        decide. ``creating`` marks POST /issues, which some faults act on after storing."""
        payload = await self._record(request)
        refusal, then = self._inject(request.method, creating)
        if refusal is None:
            refusal = self._authenticate(request.headers.get("authorization"))
        if refusal is not None:
            return refusal, then, payload
        exhausted, then.headers = self._spend()
        if exhausted:
            return _error(403, PRIMARY_LIMIT, headers=then.headers), then, payload
        if f"{owner}/{repo}".lower() != self.repository.lower():
            return _not_found(then.headers), then, payload
        return None, then, payload

    async def _finish(self, then: _Then, response: Response) -> Response:
        # After acting, like a GitHub whose answer is lost: the caller cannot know.
        await self._pause(then.delay)
        if then.drop:
            return _DroppedConnection()
        response.headers.update(then.headers)
        return response

    async def _record(self, request: Request) -> Any:
        raw = await request.body()
        try:
            payload = await request.json() if raw else None
        except ValueError:
            payload = None
        path = request.url.path.removeprefix(self.prefix) or "/"
        recorded = RecordedRequest(
            request.method,
            path,
            dict(request.query_params),
            {k.lower(): v for k, v in request.headers.items()},
            payload,
        )
        with self._changed:
            self._requests.append(recorded)
            self._changed.notify_all()
        return payload

    def _inject(self, method: str, creating: bool) -> tuple[Response | None, _Then]:
        """A refusal (a fault's answer or a dropped connection) or what to do after acting."""
        kind = self._draw(creating)  # drawn even when a queued fault wins: reproducible runs
        fault = self._take_fault(method)
        if fault is None and kind is not None:
            fault = self._chaos_fault(kind)
            with self._changed:
                self._injected[kind] += 1
        if fault is None:
            return None, _Then()
        if fault.status is not None:
            return JSONResponse(fault.body, fault.status, headers=fault.headers), _Then()
        if fault.reset and not (fault.after_create and creating):
            return _DroppedConnection(), _Then()
        return None, _Then(delay=fault.delay, drop=fault.reset)

    def _draw(self, creating: bool) -> str | None:
        with self._changed:
            chaos = self._chaos
            if chaos is None:
                return None
            roll = chaos.rng.random()
        kinds = [k for k in chaos.kinds if creating or k not in _CREATE_ONLY]
        if roll >= chaos.probability or not kinds:
            return None
        # One draw decides both whether and which, so each request consumes one number.
        return kinds[min(int(roll / chaos.probability * len(kinds)), len(kinds) - 1)]

    def _chaos_fault(self, kind: str) -> _Fault:
        if kind == "secondary_rate_limit":
            return _status_fault(403, {"Retry-After": "1"}, SECONDARY_LIMIT)
        if kind == "429":
            return _status_fault(429, {"Retry-After": "1"}, SECONDARY_LIMIT)
        if kind in ("reset", "reset_after_create"):
            return _Fault(1, None, reset=True, after_create=kind == "reset_after_create")
        if kind == "timeout_after_create":
            return _Fault(1, None, delay=self.chaos_stall)
        return _status_fault(int(kind))

    def _authenticate(self, authorization: str | None) -> Response | None:
        if authorization is None:
            return _error(401, "Requires authentication")
        scheme, _, credential = authorization.partition(" ")
        if scheme in ("Bearer", "token"):
            with self._changed:
                expires = self._installation_tokens.get(credential, 0.0)
            if credential == self.token or time.time() < expires:
                return None
        return _error(401, "Bad credentials")

    def _login(self, authorization: str | None) -> str:
        """Who an authenticated request acts as: the token's owner, or the app's bot."""
        credential = (authorization or "").partition(" ")[2]
        return TOKEN_LOGIN if credential == self.token else f"{APP_SLUG}[bot]"

    def _spend(self) -> tuple[bool, dict[str, str]]:
        """Count a request against the primary rate limit: (exhausted, headers to send)."""
        now = time.time()
        with self._changed:
            budget = _refilled(self._budget, now)
            exhausted = budget.used >= budget.limit
            if not exhausted:
                budget.used += 1
            numbers = _rate_numbers(budget)
        headers = {f"X-RateLimit-{name.title()}": str(value) for name, value in numbers.items()}
        return exhausted, headers | {"X-RateLimit-Resource": "core"}

    def _verify_jwt(self, authorization: str | None) -> Response | None:
        with self._changed:
            app = self._app
        if app is None or authorization is None or not authorization.startswith("Bearer "):
            return _error(401, BAD_JWT)
        try:
            claims = jwt.decode(
                authorization.removeprefix("Bearer "),
                app.public_key,
                algorithms=["RS256"],
                options={"require": ["iat", "exp", "iss"]},
            )
        except jwt.PyJWTError:
            return _error(401, BAD_JWT)
        # GitHub takes the app id as a number or as a string.
        if str(claims["iss"]) != str(app.app_id):
            return _error(401, BAD_JWT)
        if claims["exp"] - claims["iat"] > MAX_JWT_LIFETIME:
            return _error(401, "'Expiration time' claim ('exp') is too far in the future")
        return None

    def _issue_token(self, installation_id: int) -> Response:
        with self._changed:
            app = self._app
            if app is None or installation_id != app.installation_id:
                return _not_found()
            token = "ghs_" + "".join(secrets.choice(_TOKEN_ALPHABET) for _ in range(36))
            expires = time.time() + app.token_ttl
            self._installation_tokens[token] = expires
        shown = {
            "token": token,
            "expires_at": _iso(expires),
            "permissions": {"issues": "write", "metadata": "read"},
            "repository_selection": "all",
        }
        return JSONResponse(shown, status_code=201)

    def _queue(self, fault: _Fault) -> None:
        if fault.times < 1:
            raise ValueError("times must be at least 1")
        with self._changed:
            self._faults.append(fault)

    def _take_fault(self, method: str) -> _Fault | None:
        with self._changed:
            fault = next((f for f in self._faults if f.matches(method)), None)
            if fault is not None:
                fault.times -= 1
                if fault.times == 0:
                    self._faults.remove(fault)
            return fault

    async def _pause(self, seconds: float) -> None:
        # Cut short when the server stops, so shutdown never waits out a long delay.
        if seconds <= 0 or self._stopping is None:
            return
        with suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), timeout=seconds)

    def _file(self, payload: Any, login: str) -> Response:
        if not isinstance(payload, dict):
            return _error(400, "Problems parsing JSON")
        with self._changed:
            invalid = self._invalid(payload)
            if invalid is not None:
                return invalid
            labels = [str(label) for label in payload.get("labels") or []]
            if self.unknown_labels == "drop":
                labels = [label for label in labels if label.lower() in self._labels]
            issue = self._store(
                str(payload["title"]),
                payload.get("body"),
                labels,
                [str(login) for login in payload.get("assignees") or []],
                "open",
                False,
                milestone=payload.get("milestone"),
                user=login,
                lag=self.list_lag,
            )
            shown = self._render(issue)
        return JSONResponse(shown, status_code=201, headers={"Location": shown["url"]})

    def _invalid(self, payload: dict[str, Any]) -> Response | None:
        # Callers hold self._changed.
        title, body = payload.get("title"), payload.get("body")
        labels, assignees = payload.get("labels") or [], payload.get("assignees") or []
        milestone = payload.get("milestone")
        if not isinstance(title, str | int) or title == "":
            return _validation("title", "missing_field")
        if body is not None and not isinstance(body, str):
            return _validation("body", "invalid")
        if isinstance(body, str) and len(body) > MAX_BODY:
            too_long = f"body is too long (maximum is {MAX_BODY} characters)"
            return _validation("body", "custom", message=too_long)
        if not isinstance(labels, list) or not all(isinstance(x, str) for x in labels):
            return _validation("labels", "invalid")
        if not isinstance(assignees, list) or not all(isinstance(x, str) for x in assignees):
            return _validation("assignees", "invalid")
        for login in assignees:
            if self.assignable is not None and login not in self.assignable:
                return _validation("assignees", "invalid", login)
        if milestone is not None and (
            isinstance(milestone, bool)
            or not isinstance(milestone, int)
            or milestone not in self._milestones
        ):
            return _validation("milestone", "invalid", milestone)
        return None

    def _store(
        self,
        title: str,
        body: str | None,
        labels: list[str],
        assignees: list[str],
        state: str,
        pull_request: bool,
        *,
        milestone: int | None = None,
        user: str = TOKEN_LOGIN,
        lag: float = 0.0,
    ) -> _Issue:
        # Callers hold self._changed.
        now = time.time()
        number = len(self._issues) + 1  # issues and pull requests share one sequence
        # An existing label is used under its own spelling; a new one is created.
        names = [
            (self._labels.get(label.lower()) or self._new_label(label, "ededed", None)).name
            for label in labels
        ]
        issue = _Issue(
            number,
            title,
            body,
            list(dict.fromkeys(names)),
            assignees,
            state,
            pull_request,
            now,
            now,
            closed_at=now if state == "closed" else None,
            milestone=milestone,
            user=user,
            listed_at=now + lag,
        )
        self._issues.append(issue)
        self._changed.notify_all()
        return issue

    def _comment_on(self, number: int, payload: Any, login: str) -> Response:
        if not isinstance(payload, dict):
            return _error(400, "Problems parsing JSON")
        body = payload.get("body")
        with self._changed:
            issue = self._find(number)
            if issue is None:
                return _not_found()
            if body is None or body == "":
                return _validation("body", "missing_field", resource="IssueComment")
            if not isinstance(body, str) or len(body) > MAX_BODY:
                return _validation("body", "invalid", resource="IssueComment")
            comment = self._new_comment(issue, body, login, self.list_lag)
            self._changed.notify_all()
            shown = self._comment_json(issue, comment)
        return JSONResponse(shown, status_code=201, headers={"Location": shown["url"]})

    def _new_comment(self, issue: _Issue, body: str, user: str, lag: float) -> _Comment:
        # Callers hold self._changed.
        now = time.time()
        self._comment_count += 1
        comment = _Comment(900_000 + self._comment_count, body, now, user, now + lag)
        issue.comments.append(comment)
        issue.updated_at = now
        return comment

    def _label_from(self, payload: Any) -> Response:
        if not isinstance(payload, dict):
            return _error(400, "Problems parsing JSON")
        name, color = payload.get("name"), payload.get("color", "ededed")
        description = payload.get("description")
        if not isinstance(name, str) or name == "":
            return _validation("name", "missing_field", resource="Label")
        if not isinstance(color, str) or not _COLOR.fullmatch(color):
            return _validation("color", "invalid", color, resource="Label")
        if description is not None and not isinstance(description, str):
            return _validation("description", "invalid", resource="Label")
        with self._changed:
            if name.lower() in self._labels:
                return _validation("name", "already_exists", resource="Label")
            shown = self._label_json(self._new_label(name, color, description))
        return JSONResponse(shown, status_code=201, headers={"Location": shown["url"]})

    def _new_label(self, name: str, color: str, description: str | None) -> _Label:
        # Callers hold self._changed.
        label = _Label(1000 + len(self._labels), name, color, description)
        self._labels[name.lower()] = label
        return label

    def _find(self, number: int) -> _Issue | None:
        # Callers hold self._changed. Numbers are positions: issues are never deleted.
        return self._issues[number - 1] if 1 <= number <= len(self._issues) else None

    def _existing(self, number: int) -> _Issue:
        found = self._find(number)
        if found is None:
            raise KeyError(f"no issue #{number}")
        return found

    def _render(self, issue: _Issue) -> dict[str, Any]:
        # Callers hold self._changed.
        api = f"{self.url}/repos/{self.repository}/issues/{issue.number}"
        milestone = self._milestones.get(issue.milestone) if issue.milestone is not None else None
        shown: dict[str, Any] = {
            "id": 500_000 + issue.number,
            "node_id": f"I_fake{issue.number}",
            "url": api,
            "repository_url": f"{self.url}/repos/{self.repository}",
            "comments_url": f"{api}/comments",
            "html_url": self._html_url(issue),
            "number": issue.number,
            "state": issue.state,
            "title": issue.title,
            "body": issue.body,
            "user": _user(issue.user),
            "labels": [self._label_json(self._labels[name.lower()]) for name in issue.labels],
            "assignee": _user(issue.assignees[0]) if issue.assignees else None,
            "assignees": [_user(login) for login in issue.assignees],
            "milestone": self._milestone_json(milestone) if milestone else None,
            "locked": False,
            "comments": len(issue.comments),
            "created_at": _iso(issue.created_at),
            "updated_at": _iso(issue.updated_at),
            "closed_at": _iso(issue.closed_at) if issue.closed_at is not None else None,
            "author_association": "OWNER",
        }
        if issue.pull_request:
            shown["pull_request"] = {
                "url": f"{self.url}/repos/{self.repository}/pulls/{issue.number}",
                "html_url": shown["html_url"],
                "merged_at": None,
            }
        return shown

    def _html_url(self, issue: _Issue) -> str:
        kind = "pull" if issue.pull_request else "issues"
        return f"{self.web_url}/{self.repository}/{kind}/{issue.number}"

    def _label_json(self, label: _Label) -> dict[str, Any]:
        return {
            "id": label.id,
            "node_id": f"LA_fake{label.id}",
            "url": f"{self.url}/repos/{self.repository}/labels/{quote(label.name, safe='')}",
            "name": label.name,
            "color": label.color,
            "default": False,
            "description": label.description,
        }

    def _milestone_json(self, milestone: _Milestone) -> dict[str, Any]:
        # Callers hold self._changed.
        api = f"{self.url}/repos/{self.repository}/milestones/{milestone.number}"
        states = [i.state for i in self._issues if i.milestone == milestone.number]
        created = _iso(milestone.created_at)
        return {
            "url": api,
            "html_url": f"{self.web_url}/{self.repository}/milestone/{milestone.number}",
            "labels_url": f"{api}/labels",
            "id": 700_000 + milestone.number,
            "node_id": f"MI_fake{milestone.number}",
            "number": milestone.number,
            "state": milestone.state,
            "title": milestone.title,
            "description": None,
            "creator": _user("ai-pipeline-bot"),
            "open_issues": states.count("open"),
            "closed_issues": states.count("closed"),
            "created_at": created,
            "updated_at": created,
            "closed_at": created if milestone.state == "closed" else None,
            "due_on": None,
        }

    def _comment_json(self, issue: _Issue, comment: _Comment) -> dict[str, Any]:
        created = _iso(comment.created_at)
        return {
            "id": comment.id,
            "node_id": f"IC_fake{comment.id}",
            "url": f"{self.url}/repos/{self.repository}/issues/comments/{comment.id}",
            "html_url": f"{self._html_url(issue)}#issuecomment-{comment.id}",
            "body": comment.body,
            "user": _user(comment.user),
            "created_at": created,
            "updated_at": created,
            "issue_url": f"{self.url}/repos/{self.repository}/issues/{issue.number}",
            "author_association": "OWNER",
        }

    def _repository_json(self) -> dict[str, Any]:
        owner, name = self.repository.split("/")
        with self._changed:
            open_issues = sum(1 for i in self._issues if i.state == "open")
        return {
            "id": 4242,
            "name": name,
            "full_name": self.repository,
            "owner": _user(owner),
            "private": self.private,
            "html_url": f"{self.web_url}/{self.repository}",
            "url": f"{self.url}/repos/{self.repository}",
            "has_issues": self.has_issues,
            "open_issues_count": open_issues,
            "permissions": {"admin": False, "push": True, "triage": True, "pull": True},
        }

    def _serve_at(self, base: str) -> None:
        self.web_url = base
        self.url = base + self.prefix

    def _wake_pauses(self) -> None:
        loop, stopping = self._loop, self._stopping
        if loop is not None and stopping is not None and not loop.is_closed():
            loop.call_soon_threadsafe(stopping.set)


@contextmanager
def run_fake_github(
    token: str = "test-token",
    repository: str = "acme/widgets",
    *,
    prefix: str = "",
    timeout: float = 10.0,
) -> Iterator[FakeGitHub]:
    """Serve a ``FakeGitHub`` on a free loopback port for the ``with`` block.

    ``prefix`` mounts the API under a path, as GitHub Enterprise Server does ("/api/v3");
    ``gh.url`` always is the base URL to configure. ``timeout`` bounds start and stop.
    """
    fake = FakeGitHub(token=token, repository=repository, prefix=prefix)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(128)  # listening before the server thread starts: clients queue, never refused
    host, port = sock.getsockname()
    fake._serve_at(f"http://{host}:{port}")
    config = uvicorn.Config(
        fake.app, log_config=None, log_level="warning", access_log=False, lifespan="on"
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(
        target=server.run, kwargs={"sockets": [sock]}, name="fake-github", daemon=True
    )
    thread.start()
    try:
        _wait_started(fake, thread, timeout)
        yield fake
    finally:
        fake._wake_pauses()
        server.should_exit = True
        thread.join(timeout)
        sock.close()
        if thread.is_alive():
            raise RuntimeError(f"fake GitHub did not stop within {timeout}s")


def _wait_started(fake: FakeGitHub, thread: threading.Thread, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    # Short waits so a server thread that died is noticed at once, not at the deadline.
    while not fake._started.wait(0.05):
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("fake GitHub did not start")


def _paged(request: Request, items: list[_T]) -> tuple[list[_T], dict[str, str]]:
    """The page ``per_page``/``page`` ask for (GitHub's defaults and cap) and its Link header."""
    query = request.query_params
    per_page = min(max(_int(query.get("per_page"), 30), 1), 100)
    page = max(_int(query.get("page"), 1), 1)
    last = max((len(items) + per_page - 1) // per_page, 1)
    return items[(page - 1) * per_page : page * per_page], _link_header(request, page, last)


def _link_header(request: Request, page: int, last: int) -> dict[str, str]:
    def link(number: int, rel: str) -> str:
        return f'<{request.url.include_query_params(page=number)}>; rel="{rel}"'

    links = []
    if page < last:
        links += [link(page + 1, "next"), link(last, "last")]
    if page > 1:
        links += [link(1, "first"), link(page - 1, "prev")]
    return {"Link": ", ".join(links)} if links else {}


def _refilled(budget: _Budget, now: float) -> _Budget:
    if now >= budget.resets_at:
        budget.used, budget.resets_at = 0, now + budget.window
    return budget


def _rate_numbers(budget: _Budget) -> dict[str, int]:
    return {
        "limit": budget.limit,
        "remaining": budget.limit - budget.used,
        "reset": math.ceil(budget.resets_at),
        "used": budget.used,
    }


def _status_fault(
    status: int,
    headers: dict[str, str] | None = None,
    message: str | None = None,
    errors: list[Any] | None = None,
    *,
    times: int = 1,
    method: str | None = None,
) -> _Fault:
    body: dict[str, Any] = {"message": message or _reason(status), "documentation_url": DOCS_URL}
    if errors is not None:
        body["errors"] = errors
    return _Fault(times, method, status, dict(headers or {}), body)


def _error(
    status: int,
    message: str,
    errors: list[Any] | None = None,
    *,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    body: dict[str, Any] = {"message": message, "documentation_url": DOCS_URL}
    if errors is not None:
        body["errors"] = errors
    return JSONResponse(body, status_code=status, headers=headers)


def _not_found(headers: dict[str, str] | None = None) -> JSONResponse:
    return _error(404, "Not Found", headers=headers)


def _validation(
    field: str,
    code: str,
    value: Any = None,
    message: str | None = None,
    *,
    resource: str = "Issue",
) -> JSONResponse:
    error: dict[str, Any] = {"resource": resource, "field": field, "code": code}
    if value is not None:
        error["value"] = value
    if message is not None:
        error["message"] = message
    return _error(422, "Validation Failed", [error])


def _reason(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


def _user(login: str) -> dict[str, Any]:
    return {"login": login, "id": zlib.crc32(login.encode()) % 100_000, "type": "User"}


def _int(value: str | None, default: int) -> int:
    try:
        return int(value) if value is not None else default
    except ValueError:
        return default


def _since(value: str | None) -> float | None:
    """A ``since`` parameter (ISO 8601, as GitHub takes it) as a Unix time: 0.0 when absent,
    None when unreadable."""
    if value is None:
        return 0.0
    try:
        return datetime.fromisoformat(value).timestamp()
    except ValueError:
        return None


def _iso(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
