"""An in-memory GitHub REST issues API, served over real HTTP for tests.

    with run_fake_github(token="t") as gh:
        tracker = GitHubTracker(api_url=gh.url, repository=gh.repository, token="t")
        gh.fail_next(status=502, times=2)   # the next two requests fail
        gh.delay_next(seconds=2.0)          # the next request stalls (a POST after storing)
        ...
        gh.issues, gh.requests              # what was stored, what was asked

It keeps one repository's issues (and pull requests, which the issues API lists too),
checks the bearer token, answers in GitHub's shapes, pages like GitHub, and records every
request. Faults are consumed in the order they were queued, one per matching request.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
import zlib
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from contextlib import asynccontextmanager, contextmanager, suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http import HTTPStatus
from typing import Any

import uvicorn
from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import JSONResponse, Response

from ai_pipeline.drafting.marker import marker

DOCS_URL = "https://docs.github.com/rest"
MAX_BODY = 65_536  # GitHub refuses longer issue bodies
SECONDARY_LIMIT = (
    "You have exceeded a secondary rate limit. Please wait a few minutes before you try again."
)
PRIMARY_LIMIT = "API rate limit exceeded for user ID 1."


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

    def matches(self, method: str) -> bool:
        return self.method is None or self.method.upper() == method


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
        self._changed = threading.Condition()  # guards all state below; notified on change
        self._issues: list[_Issue] = []
        self._requests: list[RecordedRequest] = []
        self._faults: list[_Fault] = []
        self._labels: dict[str, int] = {}
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

    def issue(self, number: int) -> dict[str, Any] | None:
        with self._changed:
            found = [self._render(i) for i in self._issues if i.number == number]
        return found[0] if found else None

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
    ) -> dict[str, Any]:
        """Store an issue (or a pull request) directly, without an HTTP call."""
        with self._changed:
            issue = self._store(title, body, list(labels), list(assignees), state, pull_request)
            return self._render(issue)

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
        body: dict[str, Any] = {
            "message": message or _reason(status),
            "documentation_url": DOCS_URL,
        }
        if errors is not None:
            body["errors"] = errors
        self._queue(_Fault(times, method, status, extra, body))

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

    def reset(self) -> None:
        """Forget issues, requests and faults, so one server can serve many tests."""
        with self._changed:
            self._issues.clear()
            self._requests.clear()
            self._faults.clear()
            self._labels.clear()
            self.has_issues = True
            self.assignable = None
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
        router.add_api_route("/repos/{owner}/{repo}", self._get_repository, methods=["GET"])
        router.add_api_route("/repos/{owner}/{repo}/issues", self._list_issues, methods=["GET"])
        router.add_api_route("/repos/{owner}/{repo}/issues", self._create_issue, methods=["POST"])
        router.add_api_route(
            "/repos/{owner}/{repo}/issues/{number}", self._get_issue, methods=["GET"]
        )
        app.include_router(router)
        # Registered last, so it only catches what no route above matched.
        app.add_api_route(
            "/{path:path}", self._not_found, methods=["GET", "POST", "PATCH", "PUT", "DELETE"]
        )
        return app

    async def _get_repository(self, request: Request, owner: str, repo: str) -> Response:
        refusal, delay, _ = await self._admit(request, owner, repo)
        if refusal is not None:
            return refusal
        await self._pause(delay)
        return JSONResponse(self._repository_json())

    async def _list_issues(self, request: Request, owner: str, repo: str) -> Response:
        refusal, delay, _ = await self._admit(request, owner, repo)
        if refusal is not None:
            return refusal
        query = request.query_params
        state, sort = query.get("state", "open"), query.get("sort", "created")
        if state not in ("open", "closed", "all") or sort not in ("created", "updated"):
            return _error(422, "Validation Failed")
        per_page = min(max(_int(query.get("per_page"), 30), 1), 100)
        page = max(_int(query.get("page"), 1), 1)
        with self._changed:
            chosen = [i for i in self._issues if state in ("all", i.state)]
            chosen.sort(key=lambda i: (getattr(i, f"{sort}_at"), i.number))
            if query.get("direction", "desc") == "desc":
                chosen.reverse()
            items = [self._render(i) for i in chosen[(page - 1) * per_page : page * per_page]]
        await self._pause(delay)
        last = max((len(chosen) + per_page - 1) // per_page, 1)
        return JSONResponse(items, headers=_link_header(request, page, last))

    async def _create_issue(self, request: Request, owner: str, repo: str) -> Response:
        refusal, delay, payload = await self._admit(request, owner, repo)
        if refusal is not None:
            return refusal
        if not isinstance(payload, dict):
            return _error(400, "Problems parsing JSON")
        invalid = self._invalid(payload)
        if invalid is not None:
            return invalid
        with self._changed:
            issue = self._store(
                str(payload["title"]),
                payload.get("body"),
                [str(label) for label in payload.get("labels") or []],
                [str(login) for login in payload.get("assignees") or []],
                "open",
                False,
            )
            shown = self._render(issue)
        # After storing, like a GitHub whose answer is lost: the caller cannot know.
        await self._pause(delay)
        return JSONResponse(shown, status_code=201, headers={"Location": shown["url"]})

    async def _get_issue(self, request: Request, owner: str, repo: str, number: int) -> Response:
        refusal, delay, _ = await self._admit(request, owner, repo)
        if refusal is not None:
            return refusal
        shown = self.issue(number)
        await self._pause(delay)
        return JSONResponse(shown) if shown else _error(404, "Not Found")

    async def _not_found(self, request: Request, path: str) -> Response:
        refusal, _, _ = await self._admit(request, *self.repository.split("/"))
        return refusal or _error(404, "Not Found")

    async def _admit(
        self, request: Request, owner: str, repo: str
    ) -> tuple[Response | None, float, Any]:
        """Record the request; then a queued fault, the token and the repository decide."""
        payload = await self._record(request)
        fault = self._take_fault(request.method)
        if fault is not None and fault.status is not None:
            return JSONResponse(fault.body, fault.status, headers=fault.headers), 0.0, payload
        auth = request.headers.get("authorization")
        if auth is None:
            return _error(401, "Requires authentication"), 0.0, payload
        if auth not in (f"Bearer {self.token}", f"token {self.token}"):
            return _error(401, "Bad credentials"), 0.0, payload
        if f"{owner}/{repo}".lower() != self.repository.lower():
            return _error(404, "Not Found"), 0.0, payload
        return None, fault.delay if fault else 0.0, payload

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

    def _invalid(self, payload: dict[str, Any]) -> Response | None:
        title, body = payload.get("title"), payload.get("body")
        labels, assignees = payload.get("labels") or [], payload.get("assignees") or []
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
        return None

    def _store(
        self,
        title: str,
        body: str | None,
        labels: list[str],
        assignees: list[str],
        state: str,
        pull_request: bool,
    ) -> _Issue:
        # Callers hold self._changed.
        now = time.time()
        number = len(self._issues) + 1  # issues and pull requests share one sequence
        for label in labels:
            self._labels.setdefault(label, 1000 + len(self._labels))
        issue = _Issue(number, title, body, labels, assignees, state, pull_request, now, now)
        self._issues.append(issue)
        self._changed.notify_all()
        return issue

    def _render(self, issue: _Issue) -> dict[str, Any]:
        api = f"{self.url}/repos/{self.repository}/issues/{issue.number}"
        kind = "pull" if issue.pull_request else "issues"
        shown: dict[str, Any] = {
            "id": 500_000 + issue.number,
            "node_id": f"I_fake{issue.number}",
            "url": api,
            "repository_url": f"{self.url}/repos/{self.repository}",
            "comments_url": f"{api}/comments",
            "html_url": f"{self.web_url}/{self.repository}/{kind}/{issue.number}",
            "number": issue.number,
            "state": issue.state,
            "title": issue.title,
            "body": issue.body,
            "user": _user("ai-pipeline-bot"),
            "labels": [self._label(name) for name in issue.labels],
            "assignee": _user(issue.assignees[0]) if issue.assignees else None,
            "assignees": [_user(login) for login in issue.assignees],
            "milestone": None,
            "locked": False,
            "comments": 0,
            "created_at": _iso(issue.created_at),
            "updated_at": _iso(issue.updated_at),
            "closed_at": _iso(issue.updated_at) if issue.state == "closed" else None,
            "author_association": "OWNER",
        }
        if issue.pull_request:
            shown["pull_request"] = {
                "url": f"{self.url}/repos/{self.repository}/pulls/{issue.number}",
                "html_url": shown["html_url"],
                "merged_at": None,
            }
        return shown

    def _label(self, name: str) -> dict[str, Any]:
        return {
            "id": self._labels.get(name, 0),
            "url": f"{self.url}/repos/{self.repository}/labels/{name}",
            "name": name,
            "color": "ededed",
            "default": False,
            "description": None,
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
            "private": True,
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


def _link_header(request: Request, page: int, last: int) -> dict[str, str]:
    def link(number: int, rel: str) -> str:
        return f'<{request.url.include_query_params(page=number)}>; rel="{rel}"'

    links = []
    if page < last:
        links += [link(page + 1, "next"), link(last, "last")]
    if page > 1:
        links += [link(1, "first"), link(page - 1, "prev")]
    return {"Link": ", ".join(links)} if links else {}


def _error(status: int, message: str, errors: list[Any] | None = None) -> JSONResponse:
    body: dict[str, Any] = {"message": message, "documentation_url": DOCS_URL}
    if errors is not None:
        body["errors"] = errors
    return JSONResponse(body, status_code=status)


def _validation(
    field: str, code: str, value: Any = None, message: str | None = None
) -> JSONResponse:
    error: dict[str, Any] = {"resource": "Issue", "field": field, "code": code}
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


def _iso(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
