"""Contract test: every request the real GitHubTracker makes passes the validation of Prism
mocking GitHub's own OpenAPI description (tests/prism.py says how violations are told).

Each tracker talks to Prism through an httpx client whose event hooks record every request
and the answer it got. Prism's answers are the description's examples: issue #1347 of
octocat/Hello-World, a label list holding "bug", comments without our marker, and so on.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from ai_pipeline.adapters.trackers.github import ACCEPT, GitHubOptions, GitHubTracker
from ai_pipeline.drafting.marker import marker
from ai_pipeline.drafting.template import render
from tests import factories
from tests.prism import PrismServer, prism_error, repair_spec, request_violations, violations

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(120)]

TOKEN = "ghp_CONTRACTtoken0123456789abcdefXYZ"
REPOSITORY = "octocat/hello-world"
# Prism answers 406 to GitHub's own media type alone (the description only lists
# application/json); GitHub's type first with plain JSON after it satisfies both.


@dataclass
class Recorder:
    """What the tracker sent and what came back, through httpx's event hooks."""

    sent: list[httpx.Request] = field(default_factory=list)
    answered: list[httpx.Response] = field(default_factory=list)

    async def on_request(self, request: httpx.Request) -> None:
        self.sent.append(request)

    async def on_response(self, response: httpx.Response) -> None:
        await response.aread()  # the body, for the checks after the call
        self.answered.append(response)

    def client(self) -> httpx.AsyncClient:
        hooks = {"request": [self.on_request], "response": [self.on_response]}
        return httpx.AsyncClient(timeout=30, event_hooks=hooks)

    def to(self, method: str, path: str) -> list[httpx.Response]:
        return [
            r
            for r in self.answered
            if r.request.method == method and r.request.url.path == f"/repos/{REPOSITORY}{path}"
        ]

    def assert_contract_kept(self) -> None:
        assert self.sent, "the tracker sent nothing"
        assert len(self.answered) == len(self.sent), "a request went unanswered"
        broken = {
            f"{r.request.method} {r.request.url} -> {r.status_code}": problems
            for r in self.answered
            if (problems := request_violations(r))
        }
        assert not broken, json.dumps(broken, indent=2)
        for response in self.answered:
            request = response.request
            print(f"{request.method} {request.url.path} -> {response.status_code}")
            assert request.headers["authorization"] == f"Bearer {TOKEN}"
            assert request.headers["x-github-api-version"] == "2022-11-28"
            # GitHub's examples do not all match GitHub's schemas: shown, not failed.
            for v in violations(response):
                print(f"spec example defect, {request.method} {request.url.path}: {v}")


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


@pytest.fixture
async def tracker(prism_github: PrismServer, recorder: Recorder) -> AsyncIterator[GitHubTracker]:
    async with recorder.client() as client:
        tracker = GitHubTracker(prism_github.url, REPOSITORY, TOKEN, timeout=30, client=client)
        yield tracker
        await tracker.close()


def spec_properties(prism: PrismServer, path: str, method: str) -> set[str]:
    """The properties GitHub's description allows in a request body."""
    document = json.loads(prism.spec.read_text())
    content = document["paths"][path][method]["requestBody"]["content"]
    return set(content["application/json"]["schema"]["properties"])


# --- what the tracker sends --------------------------------------------------------------


async def test_create_issue_keeps_the_contract(
    tracker: GitHubTracker, recorder: Recorder, prism_github: PrismServer
) -> None:
    request_id = "req-contract-1"
    draft = render(request_id, factories.report(), factories.triage())
    draft = draft.model_copy(update={"assignees": ["octocat"]})

    filed = await tracker.create_issue(request_id, draft)

    recorder.assert_contract_kept()
    # The description's example of a created issue.
    assert (filed.number, filed.url) == (1347, "https://github.com/octocat/Hello-World/issues/1347")
    assert filed.created
    [created] = recorder.to("POST", "/issues")
    assert created.status_code == 201
    assert created.request.headers["content-type"] == "application/json"
    body = json.loads(created.request.content)
    # What Prism cannot tell: GitHub needs a title, and the marker finds the issue again.
    assert isinstance(body["title"], str) and body["title"].strip()
    assert body["title"] == draft.title
    for key in ("labels", "assignees"):
        assert isinstance(body[key], list) and all(isinstance(v, str) for v in body[key]), key
    assert isinstance(body["body"], str) and marker(request_id) in body["body"]
    assert "bug" in body["labels"]
    # No property GitHub's description does not know (it allows any, GitHub ignores them).
    allowed = spec_properties(prism_github, "/repos/{owner}/{repo}/issues", "post")
    assert set(body) <= allowed, set(body) - allowed


async def test_create_issue_without_labels_or_assignees(
    tracker: GitHubTracker, recorder: Recorder
) -> None:
    draft = render("req-contract-2", factories.report(), factories.triage())
    draft = draft.model_copy(update={"labels": [], "assignees": []})

    await tracker.create_issue("req-contract-2", draft)

    recorder.assert_contract_kept()
    [created] = recorder.to("POST", "/issues")
    body = json.loads(created.request.content)
    assert body["labels"] == [] and body["assignees"] == []


async def test_find_filed_keeps_the_contract(tracker: GitHubTracker, recorder: Recorder) -> None:
    # The example list holds one issue, without our marker: not filed, and no second page.
    assert await tracker.find_filed("req-contract-3") is None

    recorder.assert_contract_kept()
    [listed] = recorder.to("GET", "/issues")
    assert listed.status_code == 200
    params = listed.request.url.params
    assert params["state"] == "all" and params["per_page"] == "100" and params["page"] == "1"


async def test_ping_keeps_the_contract(tracker: GitHubTracker, recorder: Recorder) -> None:
    health = await tracker.ping()

    assert health["status"] == "healthy", health
    recorder.assert_contract_kept()
    [shown] = recorder.to("GET", "")
    assert shown.status_code == 200


async def test_commenting_keeps_the_contract(tracker: GitHubTracker, recorder: Recorder) -> None:
    request_id = "req-contract-4"

    opened = await tracker.open_issue(1347)
    found = await tracker.find_comment(request_id, 1347)
    comment = await tracker.add_comment(request_id, 1347, "Seen again on Ubuntu 24.04.")

    recorder.assert_contract_kept()
    # GitHub's example issue #1347 carries "pull_request": a pull request, never commented on.
    assert opened is None
    assert found is None  # the example comment ("Me too") carries no marker
    assert comment.comment and comment.url.startswith("https://github.com/octocat/Hello-World/")
    [posted] = recorder.to("POST", "/issues/1347/comments")
    body = json.loads(posted.request.content)
    assert set(body) == {"body"} and marker(request_id) in body["body"]


async def test_milestone_keeps_the_contract(prism_github: PrismServer, recorder: Recorder) -> None:
    async with recorder.client() as client:
        tracker = GitHubTracker(
            prism_github.url,
            REPOSITORY,
            TOKEN,
            client=client,
            options=GitHubOptions(milestone=1),
        )
        draft = render("req-contract-5", factories.report(), factories.triage())
        await tracker.create_issue("req-contract-5", draft)

    recorder.assert_contract_kept()
    [created] = recorder.to("POST", "/issues")
    assert json.loads(created.request.content)["milestone"] == 1  # the example is open


# --- the harness can fail ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path", "payload", "expected"),
    [
        ("POST", "/issues", {"title": 5, "labels": "x"}, "body property labels must be array"),
        ("POST", "/issues", {"body": "no title"}, "must have required property 'title'"),
        ("POST", "/issues", {"title": "t", "milestone": True}, "milestone"),
        ("GET", "/issues?per_page=many", None, "query parameter per_page must be integer"),
        ("GET", "/issues?state=any", None, "query parameter state must be equal to one of"),
        ("GET", "/isues", None, "NO_PATH_MATCHED_ERROR"),
        ("DELETE", "/issues", None, "NO_METHOD_MATCHED_ERROR"),
    ],
)
async def test_a_broken_request_is_flagged(
    prism_github: PrismServer, method: str, path: str, payload: Any, expected: str
) -> None:
    url = f"{prism_github.url}/repos/{REPOSITORY}{path}"
    async with httpx.AsyncClient(timeout=30, headers={"Accept": ACCEPT}) as client:
        response = await client.request(method, url, json=payload)

    problems = request_violations(response)
    assert any(expected in problem for problem in problems), (response.status_code, problems)
    assert response.status_code >= 400


@pytest.mark.parametrize(
    ("accept", "refused"),
    [
        ("application/vnd.github+json", True),
        ("application/vnd.github+json, application/json;q=0.9", False),
        ("application/vnd.github+json, application/json", False),
        ("application/json", False),
    ],
)
async def test_prism_negotiates_plain_json_only(
    prism_github: PrismServer, accept: str, refused: bool
) -> None:
    """Why the tracker must name application/json too: Prism refuses a valid request whose
    Accept header names only GitHub's media type."""
    url = f"{prism_github.url}/repos/{REPOSITORY}/issues"
    async with httpx.AsyncClient(timeout=30, headers={"Accept": accept}) as client:
        response = await client.post(url, json={"title": "Crash on save"})

    if refused:
        assert (response.status_code, prism_error(response)) == (406, "NOT_ACCEPTABLE")
        assert request_violations(response)
    else:
        assert response.status_code == 201 and not request_violations(response)
        assert response.json()["number"] == 1347


# --- the repair of GitHub's description (no Prism needed) -------------------------------


def test_repair_makes_nullable_schemas_validatable() -> None:
    milestone = {"oneOf": [{"type": "string"}, {"type": "integer"}], "nullable": True}
    document: dict[str, Any] = {
        "components": {
            "schemas": {
                "typed": {"type": "string", "nullable": True},  # Prism handles these
                "body": {
                    "type": "object",
                    "properties": {
                        "milestone": dict(milestone),
                        "nullable": {"type": "boolean"},  # a property so named
                    },
                    "example": {"nullable": True},  # data, not a schema
                },
            }
        }
    }

    assert repair_spec(document) == {"nullable": 1, "example_refs": 0}

    schemas = document["components"]["schemas"]
    assert schemas["typed"] == {"type": "string", "nullable": True}
    assert schemas["body"]["properties"]["milestone"] == {
        "anyOf": [{"oneOf": milestone["oneOf"]}, {"type": "null"}]
    }
    assert schemas["body"]["properties"]["nullable"] == {"type": "boolean"}
    assert schemas["body"]["example"] == {"nullable": True}
    assert repair_spec(document) == {"nullable": 0, "example_refs": 0}  # idempotent


def test_repair_unwraps_examples_referring_to_example_objects() -> None:
    issue = {"number": 1347, "html_url": "https://github.com/octocat/Hello-World/issues/1347"}
    media = {"examples": {"default": {"value": {"$ref": "#/components/examples/issue"}}}}
    document: dict[str, Any] = {
        "paths": {"/issue": {"get": {"responses": {"200": {"content": {"json": media}}}}}},
        "components": {"examples": {"issue": {"value": issue, "x-note": 1}}},
    }

    assert repair_spec(document) == {"nullable": 0, "example_refs": 1}
    assert media["examples"]["default"] == {"value": issue}


async def test_acting_on_an_issue_in_place_keeps_the_contract(
    tracker: GitHubTracker, recorder: Recorder
) -> None:
    """The GitHub App mode's calls: read an issue, list its comments since a time, comment,
    edit the comment, add and remove labels (a name with a colon and a space), assign."""
    since = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)

    issue = await tracker.read_issue(1347)
    comments = await tracker.list_comments(1347, since=since)
    created = await tracker.create_comment(1347, "<!-- ai-pipeline:triage -->\nTriaged.")
    edited = await tracker.edit_comment(created.id, "<!-- ai-pipeline:triage -->\nAgain.")
    labels = await tracker.add_labels(1347, ["bug", "priority: high"])
    await tracker.remove_label(1347, "priority: high")
    assignees = await tracker.add_assignees(1347, ["octocat"])

    recorder.assert_contract_kept()
    assert issue is None  # GitHub's example issue #1347 is a pull request
    assert comments and all(c.url.startswith("https://github.com/") for c in comments)
    [listed] = recorder.to("GET", "/issues/1347/comments")
    assert listed.request.url.params["since"] == "2026-01-02T03:04:05Z"
    assert created.id > 0 and edited is not None
    [patched] = [r for r in recorder.answered if r.request.method == "PATCH"]
    assert patched.request.url.path == f"/repos/{REPOSITORY}/issues/comments/{created.id}"
    assert json.loads(patched.request.content) == {"body": "<!-- ai-pipeline:triage -->\nAgain."}
    [added] = recorder.to("POST", "/issues/1347/labels")
    assert json.loads(added.request.content) == {"labels": ["bug", "priority: high"]}
    assert labels  # the example's labels
    [removed] = [r for r in recorder.answered if r.request.method == "DELETE"]
    assert removed.request.url.raw_path.endswith(b"/issues/1347/labels/priority%3A%20high")
    [assigned] = recorder.to("POST", "/issues/1347/assignees")
    assert json.loads(assigned.request.content) == {"assignees": ["octocat"]}
    assert assignees
