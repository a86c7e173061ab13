"""GitHub Issues tracker: files drafts over the REST API and finds them again by marker.

Works against github.com (``https://api.github.com``) and GitHub Enterprise Server
(``https://host/api/v3``), with a personal token or as a GitHub App (``github_auth``). The
token only ever travels in the Authorization header: it is kept out of every message,
exception and repr this module produces.

What it sends is checked first: labels against the repository's (created or left out,
``GitHubOptions.labels``), assignees against its assignable users, the milestone by number.
Rate limits and GitHub's content-creation pacing are waited out (``github_pacing``); an
outage, a timeout or a long wait raises ``UnavailableError``, so the runner redelivers the
message later without ever dead-lettering it. Only GitHub's refusals (4xx) are permanent.
"""

from __future__ import annotations

import asyncio
import email.utils
import json
import time
from dataclasses import dataclass
from typing import Any, Literal, NoReturn, cast

import httpx

from ai_pipeline.adapters.trackers.github_auth import GitHubAuth, TokenAuth
from ai_pipeline.adapters.trackers.github_http import (
    API_VERSION,
    USER_AGENT,
    describe,
    json_body,
    number,
    truncate,
)
from ai_pipeline.adapters.trackers.github_labels import label_style
from ai_pipeline.adapters.trackers.github_pacing import PRIMARY, SECONDARY, RateGate
from ai_pipeline.domain.errors import PermanentError, TransientError, UnavailableError
from ai_pipeline.domain.models import FiledIssue, IssueDraft
from ai_pipeline.drafting.marker import marker, request_id_in
from ai_pipeline.observability.logging import get_logger
from ai_pipeline.observability.metrics import Metrics
from ai_pipeline.ports import OpenIssue
from ai_pipeline.text.patterns import linear

log = get_logger(__name__)

PER_PAGE = 100  # GitHub's maximum page size
ACCEPT = "application/vnd.github+json, application/json;q=0.9"

# Owners may carry underscores on Enterprise Server (names mapped from LDAP/SAML).
_REPOSITORY = linear(r"[A-Za-z0-9_-]+/[A-Za-z0-9_.-]+")  # quadratic on re
_ISSUE_LIST = {"state": "all", "sort": "created", "direction": "desc"}
_MAX_LIST_PAGES = 10  # labels and comments: enough for any repository this files into
_NOT_PRIVATE = (
    "refusing to file a security-sensitive report on {repository}: the repository is not"
    " private (AI_PIPELINE_GITHUB_PRIVATE_REPOSITORY)"
)
# GitHub's advice when a rate-limit answer does not say how long to wait.
_DEFAULT_RATE_LIMIT_WAIT = 60.0
_MIN_REDACTABLE = 8
_UNKNOWN = "the outcome is unknown: the issue may have been created"

# Raised before any byte reached GitHub, so nothing can have been created.
_NOT_SENT: tuple[type[Exception], ...] = (
    httpx.ConnectError,
    httpx.ConnectTimeout,
    httpx.PoolTimeout,
    httpx.ProxyError,
)
# Our own request is malformed (bad scheme, bad header): retrying cannot help.
_OUR_FAULT: tuple[type[Exception], ...] = (httpx.UnsupportedProtocol, httpx.LocalProtocolError)

_HINTS = {
    401: "check the configured GitHub token",
    403: "the token may lack permission to create issues in {repository}",
    404: "repository {repository} does not exist or the token cannot see it",
    410: "issues are disabled for {repository}",
}


@dataclass(frozen=True)
class GitHubOptions:
    # "create": labels the repository lacks are created (colour and description from
    # github_labels); "existing": they are left out of the issue, since GitHub would
    # otherwise create them or, without push access, silently drop them.
    labels: Literal["create", "existing"] = "create"
    milestone: int | None = None  # by number; not sent while it is missing or closed
    # Refuse to file unless the repository is private (the security-report repository).
    require_private: bool = False
    # Longer rate-limit waits hand the message back to the runner (back-pressure) instead
    # of holding it: a Kafka consumer must poll within max.poll.interval.ms.
    max_wait_seconds: float = 60.0
    # How long labels, assignees, the milestone and the repository's privacy are trusted.
    cache_seconds: float = 600.0


class GitHubTracker:
    name = "github"

    def __init__(
        self,
        api_url: str,
        repository: str,
        token: str | GitHubAuth,
        timeout: float = 10.0,
        reconcile_pages: int = 3,
        client: httpx.AsyncClient | None = None,
        *,
        options: GitHubOptions | None = None,
        gate: RateGate | None = None,
        metrics: Metrics | None = None,
        name: str = "github",
    ):
        self.api_url = _check_api_url(api_url)
        self.repository = _check_repository(repository)
        if reconcile_pages < 1:
            raise ValueError("reconcile_pages must be at least 1")
        self.name = name
        self._auth = TokenAuth(token) if isinstance(token, str) else token
        self._timeout = timeout
        self._reconcile_pages = reconcile_pages
        self._options = options or GitHubOptions()
        self._gate = gate or RateGate()
        self._metrics = metrics or Metrics()
        self._repo_url = f"{self.api_url}/repos/{self.repository}"
        # Headers go with each request so a shared client is never modified. GitHub's own
        # media type first; plain JSON is what an OpenAPI mock of GitHub can negotiate.
        self._headers = {
            "Accept": ACCEPT,
            "X-GitHub-Api-Version": API_VERSION,
            "User-Agent": USER_AGENT,
        }
        self._creating = asyncio.Lock()  # GitHub asks for content creation one at a time
        self._cache = _Cache(self._options.cache_seconds)
        self._owns_client = client is None
        self._client = client if client is not None else httpx.AsyncClient(timeout=timeout)

    def __repr__(self) -> str:
        return f"GitHubTracker(api_url={self.api_url!r}, repository={self.repository!r})"

    async def create_issue(self, request_id: str, draft: IssueDraft) -> FiledIssue:
        if self._options.require_private:
            await self._check_private()
        payload = await self._payload(request_id, draft)
        response = await self._send("POST", f"{self._repo_url}/issues", json=payload, creating=True)
        if not response.is_success:
            self._raise_for(response, "GitHub refused the issue", creating=True)
        issue = _filed_issue(json_body(response), created=True)
        if issue is None:
            # A 2xx means GitHub most likely stored it; reconciliation will tell.
            raise self._unavailable(
                "server_error",
                f"GitHub answered {response.status_code} without an issue; {_UNKNOWN}",
            )
        return issue

    async def find_filed(self, request_id: str) -> FiledIssue | None:
        # The exact marker, not the first one in the body: reporter text quoted in a code block
        # may carry a look-alike marker ahead of ours.
        wanted = marker(request_id)
        for page in range(1, self._reconcile_pages + 1):
            items = await self._list(f"{self._repo_url}/issues", page, _ISSUE_LIST)
            for item in items:
                if _is_issue(item) and wanted in str(item.get("body") or ""):
                    found = _filed_issue(item, created=False)
                    if found is not None:
                        return found
            if len(items) < PER_PAGE:
                return None
        return None

    async def open_issue(self, number: int) -> OpenIssue | None:
        response = await self._send("GET", f"{self._repo_url}/issues/{number}")
        if response.status_code in (404, 410):
            return None  # deleted, transferred away or never there: nothing to comment on
        if not response.is_success:
            self._raise_for(response, f"GitHub refused to show issue #{number}")
        data = json_body(response)
        issue = _filed_issue(data, created=False)
        if issue is None or not _is_issue(data) or data.get("state") != "open":
            return None
        comments = await self._comments(number)
        occurrences = sum(1 for c in comments if request_id_in(str(c.get("body") or "")))
        return OpenIssue(number, issue.url, issue.title, occurrences)

    async def add_comment(self, request_id: str, number: int, body: str) -> FiledIssue:
        if marker(request_id) not in body:
            body = f"{body}\n{marker(request_id)}\n"
        url = f"{self._repo_url}/issues/{number}/comments"
        response = await self._send("POST", url, json={"body": body}, creating=True)
        if not response.is_success:
            self._raise_for(response, f"GitHub refused the comment on #{number}", creating=True)
        comment = _filed_comment(json_body(response), number, created=True)
        if comment is None:
            raise self._unavailable(
                "server_error",
                f"GitHub answered {response.status_code} without a comment; {_UNKNOWN}",
            )
        return comment

    async def find_comment(self, request_id: str, number: int) -> FiledIssue | None:
        wanted = marker(request_id)
        for item in await self._comments(number):
            if wanted in str(item.get("body") or ""):
                return _filed_comment(item, number, created=False)
        return None

    async def ping(self) -> dict[str, Any]:
        where = {"backend": self.name, "repository": self.repository, "api_url": self.api_url}
        try:
            data = await self._repository()
            if data.get("has_issues") is False:
                raise self._permanent(f"issues are disabled for {self.repository}")
            if self._options.require_private and data.get("private") is not True:
                raise self._permanent(_NOT_PRIVATE.format(repository=self.repository))
        except (TransientError, PermanentError) as exc:
            return {"status": "unhealthy", **where, "error": str(exc)}
        except Exception as exc:  # a health check reports, it never raises
            return {"status": "unhealthy", **where, "error": self._redact(describe(exc))}
        return {"status": "healthy", **where}

    async def close(self) -> None:
        if self._owns_client:
            await self._client.aclose()

    # --- what a payload may carry ------------------------------------------------------

    async def _payload(self, request_id: str, draft: IssueDraft) -> dict[str, Any]:
        body = draft.body
        # Without its marker an issue cannot be found again after an unknown outcome.
        if marker(request_id) not in body:
            body = f"{body}\n{marker(request_id)}\n"
        payload: dict[str, Any] = {
            "title": draft.title,
            "body": body,
            "labels": await self._checked_labels(draft.labels),
            "assignees": [a for a in _unique(draft.assignees) if await self._assignable(a)],
        }
        milestone = await self._open_milestone()
        if milestone is not None:
            payload["milestone"] = milestone
        return payload

    async def _checked_labels(self, wanted: list[str]) -> list[str]:
        existing = await self._labels()
        labels = []
        for label in _unique(wanted):
            name = existing.get(label.lower())
            if name is None and self._options.labels == "create":
                name = await self._create_label(label)
                existing[label.lower()] = name
            if name is None:
                log.info("github_label_left_out", label=label, repository=self.repository)
                self._metrics.tracker_values_dropped.labels(self.name, "label").inc()
                continue
            labels.append(name)
        return labels

    async def _labels(self) -> dict[str, str]:
        """The repository's labels by lower-cased name (GitHub matches them case-blind)."""
        cached = self._cache.get("labels")
        if cached is not None:
            return cast("dict[str, str]", cached)
        names: dict[str, str] = {}
        for page in range(1, _MAX_LIST_PAGES + 1):
            items = await self._list(f"{self._repo_url}/labels", page, {})
            names.update(
                (str(i["name"]).lower(), str(i["name"]))
                for i in items
                if isinstance(i, dict) and isinstance(i.get("name"), str)
            )
            if len(items) < PER_PAGE:
                break
        self._cache.put("labels", names)
        return names

    async def _create_label(self, name: str) -> str:
        color, description = label_style(name)
        payload = {"name": name, "color": color, "description": description}
        response = await self._send("POST", f"{self._repo_url}/labels", json=payload, creating=True)
        if response.status_code == 422 and _has_error_code(response, "already_exists"):
            return name  # created meanwhile (another process, a person): use it
        if not response.is_success:
            self._raise_for(response, f"GitHub refused to create the label {name!r}")
        log.info("github_label_created", label=name, repository=self.repository)
        return name

    async def _assignable(self, login: str) -> bool:
        key = f"assignee:{login.lower()}"
        cached = self._cache.get(key)
        if cached is None:
            response = await self._send("GET", f"{self._repo_url}/assignees/{login}")
            if response.status_code not in (204, 404):
                self._raise_for(response, f"GitHub refused to check the assignee {login!r}")
            cached = response.status_code == 204
            self._cache.put(key, cached)
        if not cached:
            log.info("github_assignee_left_out", assignee=login, repository=self.repository)
            self._metrics.tracker_values_dropped.labels(self.name, "assignee").inc()
        return bool(cached)

    async def _open_milestone(self) -> int | None:
        number = self._options.milestone
        if number is None:
            return None
        cached = self._cache.get("milestone")
        if cached is None:
            response = await self._send("GET", f"{self._repo_url}/milestones/{number}")
            if response.status_code not in (200, 404):
                self._raise_for(response, f"GitHub refused to show milestone {number}")
            data = json_body(response) if response.status_code == 200 else None
            cached = isinstance(data, dict) and data.get("state") == "open"
            if not cached:
                log.warning(
                    "github_milestone_unusable", milestone=number, repository=self.repository
                )
            self._cache.put("milestone", cached)
        if not cached:
            self._metrics.tracker_values_dropped.labels(self.name, "milestone").inc()
        return number if cached else None

    async def _check_private(self) -> None:
        if self._cache.get("private") is None:
            self._cache.put("private", (await self._repository()).get("private") is True)
        if not self._cache.get("private"):
            raise self._permanent(_NOT_PRIVATE.format(repository=self.repository))

    async def _repository(self) -> dict[str, Any]:
        response = await self._send("GET", self._repo_url)
        if not response.is_success:
            self._raise_for(response, "GitHub refused to show the repository")
        data = json_body(response)
        return data if isinstance(data, dict) else {}

    # --- listing ------------------------------------------------------------------------

    async def _comments(self, number: int) -> list[dict[str, Any]]:
        comments: list[dict[str, Any]] = []
        for page in range(1, _MAX_LIST_PAGES + 1):
            items = await self._list(f"{self._repo_url}/issues/{number}/comments", page, {})
            comments += [i for i in items if isinstance(i, dict)]
            if len(items) < PER_PAGE:
                break
        return comments

    async def _list(self, url: str, page: int, params: dict[str, Any]) -> list[Any]:
        query = {**params, "per_page": PER_PAGE, "page": page}
        response = await self._send("GET", url, params=query)
        if not response.is_success:
            self._raise_for(response, "GitHub refused to list")
        items = json_body(response)
        if not isinstance(items, list):
            # Not knowing is not "not filed": a retry must not create a duplicate.
            raise self._unavailable("server_error", "GitHub answered a list with something else")
        return items

    # --- sending --------------------------------------------------------------------------

    async def _send(
        self,
        method: str,
        url: str,
        *,
        params: dict[str, Any] | None = None,
        json: dict[str, Any] | None = None,
        creating: bool = False,
    ) -> httpx.Response:
        """One request, after waiting out the gate; a rate-limit refusal moves the gate and
        the request goes again (it did nothing), so a limit costs time, never a report."""
        call = _Call(method, url, params, json, creating)
        if creating:
            async with self._creating:
                return await self._send_paced(call)
        return await self._send_paced(call)

    async def _send_paced(self, call: _Call) -> httpx.Response:
        reauthorised = False
        while True:
            await self._wait_for_gate(call.creating)
            if call.creating:
                self._gate.created()
            response = await self._request(call)
            self._gate.observe(response.headers)
            if response.status_code == 401 and not reauthorised and self._auth.invalidate():
                # An installation token may have been revoked early: fetch a new one once.
                reauthorised = True
                continue
            wait = _rate_limit_wait(response)
            if wait is None:
                return response
            primary = response.headers.get("x-ratelimit-remaining") == "0"
            self._gate.block(wait, PRIMARY if primary else SECONDARY)
            log.warning(
                "github_rate_limited",
                status=response.status_code,
                kind=PRIMARY if primary else SECONDARY,
                wait_seconds=round(wait, 1),
            )

    async def _wait_for_gate(self, creating: bool) -> None:
        while (wait := self._gate.wait(creating)) is not None:
            if wait.seconds > self._options.max_wait_seconds:
                raise self._unavailable(
                    "rate_limit",
                    f"GitHub {wait.reason} rate limit: the next request may go in"
                    f" {wait.seconds:.0f} s",
                    wait.seconds,
                )
            self._metrics.tracker_rate_limit_waits.labels(self.name, wait.reason).inc()
            self._metrics.tracker_rate_limit_wait_seconds.labels(self.name, wait.reason).inc(
                wait.seconds
            )
            await asyncio.sleep(wait.seconds)

    async def _request(self, call: _Call) -> httpx.Response:
        try:
            authorization = await self._auth.authorization(self._client)
        except PermanentError as exc:
            raise self._permanent(str(exc)) from exc
        except TransientError as exc:
            raise self._unavailable(
                "connection", f"no installation token: {exc}", exc.retry_after
            ) from exc
        headers = {**self._headers, "Authorization": authorization}
        try:
            return await self._client.request(
                call.method,
                call.url,
                params=call.params,
                json=call.json,
                headers=headers,
                timeout=self._timeout,
                follow_redirects=False,  # a redirect must not carry the token elsewhere
            )
        except _NOT_SENT as exc:
            raise self._unavailable(
                "connection", f"could not reach GitHub at {self.api_url} ({describe(exc)})"
            ) from exc
        except _OUR_FAULT as exc:
            raise self._permanent(
                f"could not send the request to GitHub ({describe(exc)})"
            ) from exc
        except httpx.TimeoutException as exc:
            outcome = f"; {_UNKNOWN}" if call.creating else ""
            raise self._unavailable(
                "timeout", f"no answer from GitHub ({describe(exc)}){outcome}"
            ) from exc
        except httpx.HTTPError as exc:
            # The request left: GitHub may have acted on it even though no answer came back.
            outcome = f"; {_UNKNOWN}" if call.creating else ""
            raise self._unavailable(
                "connection", f"no answer from GitHub ({describe(exc)}){outcome}"
            ) from exc

    def _raise_for(
        self, response: httpx.Response, refused: str, creating: bool = False
    ) -> NoReturn:
        status = response.status_code
        _, detail = _detail(response)
        if status >= 500:
            # GitHub can fail after storing the issue (a 502 from its front end, typically).
            outcome = f"; {_UNKNOWN}" if creating else ""
            raise self._unavailable(
                "server_error", f"GitHub failed ({detail}){outcome}", _retry_after(response)
            )
        if 300 <= status < 400:
            location = response.headers.get("location", "?")
            raise self._permanent(
                f"{refused}: GitHub redirected ({status}) to {location}; "
                "update the configured repository or API URL"
            )
        hint = _HINTS.get(status, "").format(repository=self.repository)
        raise self._permanent(f"{refused} ({detail})" + (f": {hint}" if hint else ""))

    def _unavailable(
        self, reason: str, message: str, retry_after: float | None = None
    ) -> UnavailableError:
        """GitHub cannot take the request now: the runner backs off and redelivers without
        using up the message's attempts, so an outage or a rate limit never dead-letters a
        report. Ledger and marker make the redelivery safe after an unknown outcome."""
        self._metrics.tracker_retries.labels(self.name, reason).inc()
        return UnavailableError(self._redact(message), retry_after=retry_after)

    def _permanent(self, message: str) -> PermanentError:
        return PermanentError(self._redact(message))

    def _redact(self, text: str) -> str:
        # Belt and braces: nothing here interpolates a secret, but server text is untrusted.
        # Real secrets are long; replacing a toy one ("t") would only garble the message.
        for secret in self._auth.secrets():
            if len(secret) >= _MIN_REDACTABLE:
                text = text.replace(secret, "[redacted]")
        return text


@dataclass(frozen=True)
class _Call:
    method: str
    url: str
    params: dict[str, Any] | None
    json: dict[str, Any] | None
    creating: bool  # content creation: paced, sent one at a time, outcome can be unknown


class _Cache:
    """Values trusted for a while: labels, assignees, the milestone, privacy."""

    def __init__(self, seconds: float):
        self._seconds = seconds
        self._values: dict[str, tuple[float, object]] = {}

    def get(self, key: str) -> object | None:
        entry = self._values.get(key)
        if entry is None or time.monotonic() - entry[0] > self._seconds:
            return None
        return entry[1]

    def put(self, key: str, value: object) -> None:
        self._values[key] = (time.monotonic(), value)


def _check_api_url(api_url: str) -> str:
    try:
        url = httpx.URL(api_url.strip().rstrip("/"))
    except httpx.InvalidURL:
        url = httpx.URL()
    if url.scheme not in ("http", "https") or not url.host:
        raise ValueError("api_url must be an http(s) URL such as https://api.github.com")
    if url.userinfo:
        # The URL appears in error messages; a secret belongs in the token alone.
        raise ValueError("api_url must not carry credentials; configure the token instead")
    return str(url)


def _check_repository(repository: str) -> str:
    repository = repository.strip()
    if not _REPOSITORY.fullmatch(repository) or repository.split("/")[1] in (".", ".."):
        raise ValueError(f"repository must look like owner/name, got {repository!r}")
    return repository


def _is_issue(item: Any) -> bool:
    # The issues API lists pull requests too; they carry a "pull_request" key.
    return isinstance(item, dict) and "pull_request" not in item


def _filed_comment(data: Any, number: int, created: bool) -> FiledIssue | None:
    url = data.get("html_url") if isinstance(data, dict) else None
    if not isinstance(url, str):
        return None
    return FiledIssue(number=number, url=url, created=created, comment=True)


def _has_error_code(response: httpx.Response, code: str) -> bool:
    data = json_body(response)
    errors = data.get("errors") if isinstance(data, dict) else None
    return isinstance(errors, list) and any(
        isinstance(e, dict) and e.get("code") == code for e in errors
    )


def _unique(values: list[str]) -> list[str]:
    """First spelling of each, compared case-blind as GitHub compares labels and logins."""
    first: dict[str, str] = {}
    for value in values:
        first.setdefault(value.lower(), value)
    return list(first.values())


def _filed_issue(data: Any, created: bool) -> FiledIssue | None:
    if not isinstance(data, dict):
        return None
    number, url = data.get("number"), data.get("html_url")
    if not isinstance(number, int) or isinstance(number, bool) or not isinstance(url, str):
        return None
    return FiledIssue(number=number, url=url, title=str(data.get("title") or ""), created=created)


def _detail(response: httpx.Response) -> tuple[str, str]:
    """GitHub's ``message`` and a readable "status message: errors" line."""
    data = json_body(response)
    data = data if isinstance(data, dict) else {}
    message = str(data.get("message") or "")
    text = f"{response.status_code} {message or response.reason_phrase}".strip()
    errors = data.get("errors")
    if isinstance(errors, list) and errors:
        text += ": " + "; ".join(_describe_error(e) for e in errors)
    return message, truncate(text)


def _describe_error(error: Any) -> str:
    # Shapes seen: {"message": ...}, {"field", "code", "value", "resource"}, or a bare string.
    if not isinstance(error, dict):
        return str(error)
    if error.get("message"):
        return str(error["message"])
    words = [str(error[key]) for key in ("field", "code") if error.get(key)]
    if "value" in error:
        words.append(f"({json.dumps(error['value'], default=str)})")
    return " ".join(words) or json.dumps(error, default=str)


def _rate_limit_wait(response: httpx.Response) -> float | None:
    """For a rate-limit refusal (429, or 403 saying so), the seconds to wait, in the order
    GitHub documents: Retry-After, the reset time, a minute. None for any other answer."""
    status, headers = response.status_code, response.headers
    if status != 429 and not (
        status == 403
        and (
            "retry-after" in headers
            or headers.get("x-ratelimit-remaining") == "0"
            or "rate limit" in _detail(response)[0].lower()
        )
    ):
        return None
    wait = _retry_after(response)
    if wait is not None:
        return wait
    reset = number(response.headers.get("x-ratelimit-reset"))
    if response.headers.get("x-ratelimit-remaining") == "0" and reset is not None:
        return max(0.0, reset - time.time())
    return _DEFAULT_RATE_LIMIT_WAIT


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("retry-after")
    if value is None:
        return None
    seconds = number(value)
    if seconds is not None:
        return max(0.0, seconds)
    try:  # the HTTP-date form
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())
