"""GitHub Issues tracker: files drafts over the REST API and finds them again by marker.

Works against github.com (``https://api.github.com``) and GitHub Enterprise Server
(``https://host/api/v3``). The token only ever travels in the Authorization header: it is
kept out of every message, exception and repr this module produces.
"""

from __future__ import annotations

import email.utils
import json
import math
import re
import time
from typing import Any, NoReturn

import httpx

from ai_pipeline.domain.errors import PermanentError, TransientError
from ai_pipeline.domain.models import FiledIssue, IssueDraft
from ai_pipeline.drafting.marker import marker

PER_PAGE = 100  # GitHub's maximum page size
USER_AGENT = "ai-pipeline"
API_VERSION = "2022-11-28"

# Owners may carry underscores on Enterprise Server (names mapped from LDAP/SAML).
_REPOSITORY = re.compile(r"[A-Za-z0-9_-]+/[A-Za-z0-9_.-]+")
# Anything else would be refused by the HTTP layer, whose error text can echo the header.
_TOKEN = re.compile(r"[\x21-\x7e]+")
# GitHub's advice when a rate-limit answer does not say how long to wait.
_DEFAULT_RATE_LIMIT_WAIT = 60.0
_MAX_DETAIL = 500
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


class GitHubTracker:
    name = "github"

    def __init__(
        self,
        api_url: str,
        repository: str,
        token: str,
        timeout: float = 10.0,
        reconcile_pages: int = 3,
        client: httpx.AsyncClient | None = None,
    ):
        self.api_url = _check_api_url(api_url)
        self.repository = _check_repository(repository)
        if reconcile_pages < 1:
            raise ValueError("reconcile_pages must be at least 1")
        self._token = _check_token(token)
        self._timeout = timeout
        self._reconcile_pages = reconcile_pages
        self._repo_url = f"{self.api_url}/repos/{self.repository}"
        # Headers go with each request so a shared client is never modified.
        self._headers = {
            "Authorization": f"Bearer {self._token}",
            "Accept": "application/vnd.github+json",
            "X-GitHub-Api-Version": API_VERSION,
            "User-Agent": USER_AGENT,
        }
        self._owns_client = client is None
        self._client = client if client is not None else httpx.AsyncClient(timeout=timeout)

    def __repr__(self) -> str:
        return f"GitHubTracker(api_url={self.api_url!r}, repository={self.repository!r})"

    async def create_issue(self, request_id: str, draft: IssueDraft) -> FiledIssue:
        response = await self._send(
            "POST", f"{self._repo_url}/issues", json=_payload(request_id, draft), creating=True
        )
        if not response.is_success:
            self._raise_for(response, "GitHub refused the issue", creating=True)
        issue = _filed_issue(_json(response), created=True)
        if issue is None:
            # A 2xx means GitHub most likely stored it; reconciliation will tell.
            raise self._transient(
                f"GitHub answered {response.status_code} without an issue; {_UNKNOWN}"
            )
        return issue

    async def find_filed(self, request_id: str) -> FiledIssue | None:
        # The exact marker, not the first one in the body: reporter text quoted in a code block
        # may carry a look-alike marker ahead of ours.
        wanted = marker(request_id)
        for page in range(1, self._reconcile_pages + 1):
            items = await self._list_issues(page)
            for item in items:
                if _is_issue(item) and wanted in str(item.get("body") or ""):
                    found = _filed_issue(item, created=False)
                    if found is not None:
                        return found
            if len(items) < PER_PAGE:
                return None
        return None

    async def ping(self) -> dict[str, Any]:
        where = {"backend": self.name, "repository": self.repository, "api_url": self.api_url}
        try:
            response = await self._send("GET", self._repo_url)
            if not response.is_success:
                self._raise_for(response, "GitHub refused to show the repository")
            if isinstance(data := _json(response), dict) and data.get("has_issues") is False:
                raise self._permanent(f"issues are disabled for {self.repository}")
        except (TransientError, PermanentError) as exc:
            return {"status": "unhealthy", **where, "error": str(exc)}
        except Exception as exc:  # a health check reports, it never raises
            return {"status": "unhealthy", **where, "error": self._redact(_describe(exc))}
        return {"status": "healthy", **where}

    async def close(self) -> None:
        if self._owns_client:
            await self._client.aclose()

    async def _list_issues(self, page: int) -> list[Any]:
        params = {
            "state": "all",
            "sort": "created",
            "direction": "desc",
            "per_page": PER_PAGE,
            "page": page,
        }
        response = await self._send("GET", f"{self._repo_url}/issues", params=params)
        if not response.is_success:
            self._raise_for(response, "GitHub refused to list issues")
        items = _json(response)
        if not isinstance(items, list):
            # Not knowing is not "not filed": a retry must not create a duplicate.
            raise self._transient("GitHub answered the issue list with something other than a list")
        return items

    async def _send(
        self,
        method: str,
        url: str,
        *,
        params: dict[str, Any] | None = None,
        json: dict[str, Any] | None = None,
        creating: bool = False,
    ) -> httpx.Response:
        try:
            return await self._client.request(
                method,
                url,
                params=params,
                json=json,
                headers=self._headers,
                timeout=self._timeout,
                follow_redirects=False,  # a redirect must not carry the token elsewhere
            )
        except _NOT_SENT as exc:
            raise self._transient(
                f"could not reach GitHub at {self.api_url} ({_describe(exc)})"
            ) from exc
        except _OUR_FAULT as exc:
            raise self._permanent(
                f"could not send the request to GitHub ({_describe(exc)})"
            ) from exc
        except httpx.HTTPError as exc:
            # The request left: GitHub may have acted on it even though no answer came back.
            outcome = f"; {_UNKNOWN}" if creating else ""
            raise self._transient(f"no answer from GitHub ({_describe(exc)}){outcome}") from exc

    def _raise_for(
        self, response: httpx.Response, refused: str, creating: bool = False
    ) -> NoReturn:
        status = response.status_code
        message, detail = _detail(response)
        if status >= 500:
            # GitHub can fail after storing the issue (a 502 from its front end, typically).
            outcome = f"; {_UNKNOWN}" if creating else ""
            raise self._transient(f"GitHub failed ({detail}){outcome}", _retry_after(response))
        if status == 429 or (status == 403 and _is_rate_limited(response, message)):
            wait = _rate_limit_wait(response)
            raise self._transient(f"GitHub rate limit hit ({detail})", wait)
        if 300 <= status < 400:
            location = response.headers.get("location", "?")
            raise self._permanent(
                f"{refused}: GitHub redirected ({status}) to {location}; "
                "update the configured repository or API URL"
            )
        hint = _HINTS.get(status, "").format(repository=self.repository)
        raise self._permanent(f"{refused} ({detail})" + (f": {hint}" if hint else ""))

    def _transient(self, message: str, retry_after: float | None = None) -> TransientError:
        return TransientError(self._redact(message), retry_after=retry_after)

    def _permanent(self, message: str) -> PermanentError:
        return PermanentError(self._redact(message))

    def _redact(self, text: str) -> str:
        # Belt and braces: nothing here interpolates the token, but server text is untrusted.
        # Real tokens are long; replacing a toy one ("t") would only garble the message.
        if len(self._token) < _MIN_REDACTABLE:
            return text
        return text.replace(self._token, "[redacted]")


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


def _check_token(token: str) -> str:
    token = token.strip()  # a token read from a file often ends in a newline
    if not _TOKEN.fullmatch(token):
        raise ValueError("the GitHub token must be non-empty printable ASCII without spaces")
    return token


def _payload(request_id: str, draft: IssueDraft) -> dict[str, Any]:
    body = draft.body
    # Without its marker an issue cannot be found again after an unknown outcome.
    if marker(request_id) not in body:
        body = f"{body}\n{marker(request_id)}\n"
    return {
        "title": draft.title,
        "body": body,
        "labels": draft.labels,
        "assignees": draft.assignees,
    }


def _is_issue(item: Any) -> bool:
    # The issues API lists pull requests too; they carry a "pull_request" key.
    return isinstance(item, dict) and "pull_request" not in item


def _filed_issue(data: Any, created: bool) -> FiledIssue | None:
    if not isinstance(data, dict):
        return None
    number, url = data.get("number"), data.get("html_url")
    if not isinstance(number, int) or isinstance(number, bool) or not isinstance(url, str):
        return None
    return FiledIssue(number=number, url=url, title=str(data.get("title") or ""), created=created)


def _json(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:  # JSONDecodeError and UnicodeDecodeError are both ValueErrors
        return None


def _detail(response: httpx.Response) -> tuple[str, str]:
    """GitHub's ``message`` and a readable "status message: errors" line."""
    data = _json(response)
    data = data if isinstance(data, dict) else {}
    message = str(data.get("message") or "")
    text = f"{response.status_code} {message or response.reason_phrase}".strip()
    errors = data.get("errors")
    if isinstance(errors, list) and errors:
        text += ": " + "; ".join(_describe_error(e) for e in errors)
    return message, _truncate(text)


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


def _is_rate_limited(response: httpx.Response, message: str) -> bool:
    headers = response.headers
    return (
        "retry-after" in headers
        or headers.get("x-ratelimit-remaining") == "0"
        or "rate limit" in message.lower()
    )


def _rate_limit_wait(response: httpx.Response) -> float:
    """Seconds to wait, in the order GitHub documents: Retry-After, the reset time, a minute."""
    wait = _retry_after(response)
    if wait is not None:
        return wait
    reset = _number(response.headers.get("x-ratelimit-reset"))
    if response.headers.get("x-ratelimit-remaining") == "0" and reset is not None:
        return max(0.0, reset - time.time())
    return _DEFAULT_RATE_LIMIT_WAIT


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("retry-after")
    if value is None:
        return None
    seconds = _number(value)
    if seconds is not None:
        return max(0.0, seconds)
    try:  # the HTTP-date form
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def _number(value: str | None) -> float | None:
    try:
        number = float(value) if value is not None else None
    except ValueError:
        return None
    return number if number is not None and math.isfinite(number) else None


def _describe(exc: Exception) -> str:
    text = str(exc)
    return _truncate(f"{type(exc).__name__}: {text}" if text else type(exc).__name__)


def _truncate(text: str) -> str:
    return text if len(text) <= _MAX_DETAIL else text[: _MAX_DETAIL - 1] + "…"
