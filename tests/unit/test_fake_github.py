"""The fake GitHub's labels, assignees, milestones, comments, faults, rate limit and app tokens,
checked with plain httpx so that tests built on it can trust its shapes."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from tests.fakes.github_server import (
    APP_SLUG,
    BAD_JWT,
    DEFAULT_RATE_LIMIT,
    OUTAGE,
    PRIMARY_LIMIT,
    SECONDARY_LIMIT,
    TOKEN_LOGIN,
    FakeGitHub,
    run_fake_github,
)

pytestmark = pytest.mark.timeout(30)

TOKEN = "ghp_fakeGitHubTestToken0123456789"
APP_ID = 4711
INSTALLATION = 99


@pytest.fixture(scope="module")
def server() -> Iterator[FakeGitHub]:
    with run_fake_github(token=TOKEN) as gh:
        yield gh


@pytest.fixture
def gh(server: FakeGitHub) -> FakeGitHub:
    server.reset()
    return server


@pytest.fixture
def api(gh: FakeGitHub) -> Iterator[httpx.Client]:
    headers = {"Authorization": f"Bearer {TOKEN}", "Accept": "application/vnd.github+json"}
    with httpx.Client(base_url=f"{gh.url}/repos/{gh.repository}", headers=headers) as client:
        yield client


@pytest.fixture(scope="module")
def app_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def public_pem(key: rsa.RSAPrivateKey) -> str:
    return (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )


def app_jwt(key: rsa.RSAPrivateKey, **changes: Any) -> str:
    now = int(time.time())
    claims = {"iat": now - 60, "exp": now + 540, "iss": str(APP_ID)} | changes
    # PyJWT refuses a numeric iss when encoding; GitHub accepts one, so sign the raw claims.
    return jwt.PyJWS().encode(json.dumps(claims).encode(), key, algorithm="RS256")


def exchange(gh: FakeGitHub, token: str, installation: int = INSTALLATION) -> httpx.Response:
    return httpx.post(
        f"{gh.url}/app/installations/{installation}/access_tokens",
        headers={"Authorization": f"Bearer {token}"},
    )


def error_of(response: httpx.Response) -> dict[str, Any]:
    (error,) = response.json()["errors"]
    assert response.json()["message"] == "Validation Failed"
    return dict(error)


def stored(gh: FakeGitHub, number: int) -> dict[str, Any]:
    issue = gh.issue(number)
    assert issue is not None, number
    return issue


def new_issue(api: httpx.Client, **fields: Any) -> httpx.Response:
    return api.post("/issues", json={"title": "Crash", "body": "It crashes."} | fields)


# --- labels ------------------------------------------------------------------------------


def test_labels_are_listed_in_pages_with_a_link_header(gh: FakeGitHub, api: httpx.Client) -> None:
    for n in range(5):
        gh.add_label(f"label-{n}", color="a0b1c2", description=f"number {n}")

    first = api.get("/labels", params={"per_page": 2})
    last = api.get("/labels", params={"per_page": 2, "page": 3})

    assert [label["name"] for label in first.json()] == ["label-0", "label-1"]
    assert 'rel="next"' in first.headers["link"] and "page=3" in first.headers["link"]
    assert [label["name"] for label in last.json()] == ["label-4"]
    assert 'rel="prev"' in last.headers["link"] and 'rel="next"' not in last.headers["link"]
    assert first.json()[0] | {"id": 0} == {
        "id": 0,
        "node_id": first.json()[0]["node_id"],
        "url": f"{gh.url}/repos/acme/widgets/labels/label-0",
        "name": "label-0",
        "color": "a0b1c2",
        "default": False,
        "description": "number 0",
    }
    assert len(api.get("/labels", params={"per_page": 500}).json()) == 5  # capped at 100


def test_creating_a_label_answers_201_and_refuses_a_taken_name_or_a_bad_colour(
    gh: FakeGitHub, api: httpx.Client
) -> None:
    created = api.post(
        "/labels", json={"name": "priority: high", "color": "FF0000", "description": "Urgent"}
    )
    assert created.status_code == 201
    assert created.json()["url"].endswith("/labels/priority%3A%20high")
    assert (created.json()["name"], created.json()["color"]) == ("priority: high", "FF0000")

    taken = api.post("/labels", json={"name": "PRIORITY: HIGH", "color": "00ff00"})
    assert taken.status_code == 422
    assert error_of(taken) == {"resource": "Label", "field": "name", "code": "already_exists"}
    for colour in ("#ff0000", "fff", "gggggg", 123456):
        refused = api.post("/labels", json={"name": f"c{colour}", "color": colour})
        assert refused.status_code == 422, colour
        assert error_of(refused)["field"] == "color"
    assert [label["name"] for label in gh.labels] == ["priority: high"]
    with pytest.raises(ValueError, match="already exists"):
        gh.add_label("Priority: High")
    with pytest.raises(ValueError, match="hex"):
        gh.add_label("other", color="#123456")


def test_unknown_labels_are_created_by_default_and_dropped_when_asked(
    gh: FakeGitHub, api: httpx.Client
) -> None:
    gh.add_label("Bug", color="d73a4a")

    created = new_issue(api, labels=["bug", "new-one"])
    gh.unknown_labels = "drop"
    dropped = new_issue(api, labels=["BUG", "never-seen"])

    assert [(x["name"], x["color"]) for x in created.json()["labels"]] == [
        ("Bug", "d73a4a"),  # an existing label keeps its own spelling
        ("new-one", "ededed"),
    ]
    assert dropped.status_code == 201
    assert [x["name"] for x in dropped.json()["labels"]] == ["Bug"]
    assert [x["name"] for x in gh.labels] == ["Bug", "new-one"]


# --- assignees ---------------------------------------------------------------------------


def test_assignee_check_answers_204_for_an_assignable_login_and_404_otherwise(
    gh: FakeGitHub, api: httpx.Client
) -> None:
    assert api.get("/assignees/anyone").status_code == 204  # None: anyone may be assigned
    gh.assignable = {"octocat"}
    ok, missing = api.get("/assignees/octocat"), api.get("/assignees/mallory")
    assert (ok.status_code, ok.content) == (204, b"")
    assert (missing.status_code, missing.json()["message"]) == (404, "Not Found")


# --- milestones --------------------------------------------------------------------------


def test_milestones_are_numbered_from_1_and_shown_like_github(
    gh: FakeGitHub, api: httpx.Client
) -> None:
    assert gh.add_milestone("v1.0") == 1
    assert gh.add_milestone("v0.9", state="closed") == 2

    shown = api.get("/milestones/1").json()

    assert (shown["number"], shown["title"], shown["state"]) == (1, "v1.0", "open")
    assert shown["url"] == f"{gh.url}/repos/acme/widgets/milestones/1"
    assert shown["html_url"] == f"{gh.web_url}/acme/widgets/milestone/1"
    assert (shown["open_issues"], shown["closed_issues"], shown["closed_at"]) == (0, 0, None)
    assert api.get("/milestones/2").json()["closed_at"] is not None
    assert api.get("/milestones/3").status_code == 404


def test_an_issue_takes_a_known_milestone_number_and_refuses_anything_else(
    gh: FakeGitHub, api: httpx.Client
) -> None:
    number = gh.add_milestone("v1.0")

    filed = new_issue(api, milestone=number)
    plain = new_issue(api, milestone=None)
    unknown = new_issue(api, milestone=7)
    text = new_issue(api, milestone="v1.0")

    assert filed.status_code == 201
    assert filed.json()["milestone"]["title"] == "v1.0"
    assert stored(gh, 1)["milestone"]["open_issues"] == 1
    assert plain.json()["milestone"] is None
    assert unknown.status_code == 422
    assert error_of(unknown) == {
        "resource": "Issue",
        "field": "milestone",
        "code": "invalid",
        "value": 7,
    }
    assert (text.status_code, error_of(text)["field"]) == (422, "milestone")
    assert len(gh.issues) == 2


# --- comments ----------------------------------------------------------------------------


def test_a_comment_is_created_with_githubs_shape_and_counted_on_the_issue(
    gh: FakeGitHub, api: httpx.Client
) -> None:
    gh.add_issue("Crash")

    created = api.post("/issues/1/comments", json={"body": "Seen again on 2.1."})

    assert created.status_code == 201
    comment = created.json()
    assert set(comment) == {
        "id",
        "node_id",
        "url",
        "html_url",
        "body",
        "user",
        "created_at",
        "updated_at",
        "issue_url",
        "author_association",
    }
    assert created.headers["location"] == comment["url"]
    assert comment["html_url"] == f"{gh.web_url}/acme/widgets/issues/1#issuecomment-{comment['id']}"
    assert comment["issue_url"] == f"{gh.url}/repos/acme/widgets/issues/1"
    assert comment["body"] == "Seen again on 2.1."
    assert api.get("/issues/1").json()["comments"] == 1
    assert gh.comments(1) == [comment]


def test_commenting_refuses_an_unknown_issue_and_an_empty_body(
    gh: FakeGitHub, api: httpx.Client
) -> None:
    gh.add_issue()

    assert api.post("/issues/2/comments", json={"body": "hi"}).status_code == 404
    assert api.get("/issues/2/comments").status_code == 404
    for payload in ({}, {"body": ""}, {"body": None}):
        refused = api.post("/issues/1/comments", json=payload)
        assert refused.status_code == 422, payload
        assert error_of(refused) == {
            "resource": "IssueComment",
            "field": "body",
            "code": "missing_field",
        }
    assert gh.comments(1) == []
    with pytest.raises(KeyError):
        gh.comments(2)


def test_comments_are_listed_oldest_first_in_pages(gh: FakeGitHub, api: httpx.Client) -> None:
    gh.add_issue()
    for n in range(3):
        api.post("/issues/1/comments", json={"body": f"comment {n}"})

    first = api.get("/issues/1/comments", params={"per_page": 2})
    second = api.get("/issues/1/comments", params={"per_page": 2, "page": 2})

    assert [c["body"] for c in first.json()] == ["comment 0", "comment 1"]
    assert [c["body"] for c in second.json()] == ["comment 2"]
    assert 'rel="next"' in first.headers["link"] and 'rel="prev"' in second.headers["link"]
    assert [c["body"] for c in gh.comments(1)] == ["comment 0", "comment 1", "comment 2"]


# --- issue state and seeding -------------------------------------------------------------


def test_seeded_issues_can_be_closed_and_listed_by_state(gh: FakeGitHub, api: httpx.Client) -> None:
    gh.add_issue("Open one", labels=["bug"], assignees=["octocat"])
    gh.add_issue("A pull request", pull_request=True)
    gh.add_issue("Closed from the start", state="closed")

    closed = gh.close_issue(1)

    assert (closed["state"], closed["number"]) == ("closed", 1)
    assert closed["closed_at"] is not None and stored(gh, 3)["closed_at"] is not None
    assert closed["labels"][0]["name"] == "bug"
    assert stored(gh, 2)["html_url"].endswith("/pull/2")
    listed = api.get("/issues", params={"state": "closed"}).json()
    assert sorted(i["number"] for i in listed) == [1, 3]
    assert [i["number"] for i in api.get("/issues").json()] == [2]
    with pytest.raises(KeyError):
        gh.close_issue(9)


# --- connection resets -------------------------------------------------------------------


def test_a_reset_connection_is_a_broken_connection_not_an_http_error(
    gh: FakeGitHub, api: httpx.Client
) -> None:
    gh.reset_connection_next()

    with pytest.raises(httpx.RemoteProtocolError):
        api.get("/issues")

    assert api.get("/issues").status_code == 200  # one fault, then business as usual
    assert [r.path for r in gh.requests] == ["/repos/acme/widgets/issues"] * 2


def test_a_reset_create_stores_nothing_unless_after_create(
    gh: FakeGitHub, api: httpx.Client
) -> None:
    gh.reset_connection_next(method="POST")
    with pytest.raises(httpx.RemoteProtocolError):
        new_issue(api, title="Lost")
    assert gh.issues == []

    gh.reset_connection_next(method="POST", after_create=True)
    assert api.get("/issues").status_code == 200  # a GET does not consume a POST fault
    with pytest.raises(httpx.RemoteProtocolError):
        new_issue(api, title="Stored, answer lost")
    assert [i["title"] for i in gh.issues] == ["Stored, answer lost"]


# --- chaos -------------------------------------------------------------------------------


def statuses(api: httpx.Client, count: int) -> list[int | str]:
    seen: list[int | str] = []
    for _ in range(count):
        try:
            seen.append(api.get("/issues").status_code)
        except httpx.TransportError as exc:
            seen.append(type(exc).__name__)
    return seen


def test_chaos_repeats_for_a_seed_and_counts_what_it_injected(
    gh: FakeGitHub, api: httpx.Client
) -> None:
    kinds = ["500", "502", "secondary_rate_limit", "429", "reset"]
    gh.chaos(0.5, kinds, seed=42)
    first, injected = statuses(api, 60), gh.injected
    gh.reset()
    gh.chaos(0.5, kinds, seed=42)
    second = statuses(api, 60)

    assert first == second
    assert set(first) == {200, 500, 502, 403, 429, "RemoteProtocolError"}
    assert sum(injected.values()) == sum(1 for s in first if s != 200)
    assert injected["reset"] == first.count("RemoteProtocolError")
    assert injected["secondary_rate_limit"] == first.count(403)


def test_chaos_rate_limits_carry_retry_after_and_reset_turns_chaos_off(
    gh: FakeGitHub, api: httpx.Client
) -> None:
    gh.chaos(1.0, ["secondary_rate_limit"], seed=1)
    secondary = api.get("/issues")
    gh.chaos(1.0, ["429"], seed=1)
    too_many = api.get("/issues")
    gh.reset()

    assert (secondary.status_code, secondary.headers["retry-after"]) == (403, "1")
    assert secondary.json()["message"] == SECONDARY_LIMIT
    assert (too_many.status_code, too_many.headers["retry-after"]) == (429, "1")
    assert api.get("/issues").status_code == 200
    assert gh.injected == {}


def test_chaos_create_only_kinds_spare_other_requests(gh: FakeGitHub, api: httpx.Client) -> None:
    gh.chaos(1.0, ["reset_after_create"], seed=3)

    assert statuses(api, 5) == [200] * 5
    with pytest.raises(httpx.RemoteProtocolError):
        new_issue(api, title="Stored anyway")

    assert [i["title"] for i in gh.issues] == ["Stored anyway"]
    assert gh.injected == {"reset_after_create": 1}


def test_chaos_timeout_after_create_stores_then_stalls(gh: FakeGitHub, api: httpx.Client) -> None:
    gh.chaos(1.0, ["timeout_after_create"], seed=5)
    gh.chaos_stall = 1.0

    with pytest.raises(httpx.ReadTimeout):
        api.post("/issues", json={"title": "Slow"}, timeout=0.3)

    assert [i["title"] for i in gh.issues] == ["Slow"]


def test_chaos_refuses_unknown_kinds_and_bad_probabilities(gh: FakeGitHub) -> None:
    with pytest.raises(ValueError, match="kinds"):
        gh.chaos(0.1, ["503"], seed=1)
    with pytest.raises(ValueError, match="kinds"):
        gh.chaos(0.1, [], seed=1)
    with pytest.raises(ValueError, match="probability"):
        gh.chaos(1.5, ["500"], seed=1)


# --- primary rate limit ------------------------------------------------------------------


def test_every_answer_carries_the_primary_rate_limit_headers(
    gh: FakeGitHub, api: httpx.Client
) -> None:
    first, second = api.get(""), api.get("/issues")

    assert first.headers["x-ratelimit-limit"] == str(DEFAULT_RATE_LIMIT)
    assert first.headers["x-ratelimit-resource"] == "core"
    assert first.headers["x-ratelimit-used"] == "1"
    assert int(second.headers["x-ratelimit-remaining"]) == DEFAULT_RATE_LIMIT - 2
    assert int(second.headers["x-ratelimit-reset"]) > time.time()
    assert gh.rate_limit["used"] == 2


def test_an_exhausted_budget_answers_githubs_primary_403_until_the_reset(
    gh: FakeGitHub, api: httpx.Client
) -> None:
    gh.set_rate_limit(2, reset_in=2.0)
    allowed = [api.get("/issues") for _ in range(2)]
    refused = api.get("/issues")

    assert [r.headers["x-ratelimit-remaining"] for r in allowed] == ["1", "0"]
    assert refused.status_code == 403
    assert refused.json()["message"] == PRIMARY_LIMIT
    assert refused.headers["x-ratelimit-remaining"] == "0"
    assert int(refused.headers["x-ratelimit-reset"]) >= time.time()
    assert new_issue(api).status_code == 403 and gh.issues == []

    time.sleep(2.1)
    refilled = api.get("/issues")
    assert (refilled.status_code, refilled.headers["x-ratelimit-remaining"]) == (200, "1")


# --- GitHub App installation tokens ------------------------------------------------------


def test_a_valid_app_jwt_gets_an_installation_token_the_api_accepts(
    gh: FakeGitHub, app_key: rsa.RSAPrivateKey
) -> None:
    gh.configure_app(APP_ID, public_pem(app_key), INSTALLATION)

    answer = exchange(gh, app_jwt(app_key))
    numeric_iss = exchange(gh, app_jwt(app_key, iss=APP_ID))

    assert (answer.status_code, numeric_iss.status_code) == (201, 201)
    body = answer.json()
    assert body["token"].startswith("ghs_") and len(body["token"]) == 40
    assert body["expires_at"].endswith("Z")
    assert body["repository_selection"] == "all" and body["permissions"]
    assert gh.tokens_issued == 2
    repo = f"{gh.url}/repos/{gh.repository}"
    assert httpx.get(repo, headers={"Authorization": f"Bearer {body['token']}"}).is_success
    assert httpx.get(repo, headers={"Authorization": "Bearer ghs_forged"}).status_code == 401


@pytest.mark.parametrize(
    "changes",
    # Times relative to when the test runs, not to collection: a long suite runs it later.
    [lambda now: {"iss": "1"}, lambda now: {"exp": now - 10}, lambda now: {"iat": now + 120}],
    ids=["wrong-issuer", "expired", "issued-in-the-future"],
)
def test_a_bad_app_jwt_is_refused(
    gh: FakeGitHub, app_key: rsa.RSAPrivateKey, changes: Callable[[int], dict[str, Any]]
) -> None:
    gh.configure_app(APP_ID, public_pem(app_key), INSTALLATION)

    refused = exchange(gh, app_jwt(app_key, **changes(int(time.time()))))

    assert (refused.status_code, refused.json()["message"]) == (401, BAD_JWT)
    assert gh.tokens_issued == 0


def test_a_jwt_signed_by_another_key_or_living_too_long_is_refused(
    gh: FakeGitHub, app_key: rsa.RSAPrivateKey
) -> None:
    gh.configure_app(APP_ID, public_pem(app_key), INSTALLATION)
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    now = int(time.time())

    forged = exchange(gh, app_jwt(other))
    too_long = exchange(gh, app_jwt(app_key, iat=now - 60, exp=now + 600))
    not_a_jwt = exchange(gh, TOKEN)

    assert (forged.status_code, forged.json()["message"]) == (401, BAD_JWT)
    assert too_long.status_code == 401 and "too far in the future" in too_long.json()["message"]
    assert (not_a_jwt.status_code, not_a_jwt.json()["message"]) == (401, BAD_JWT)


def test_an_unknown_installation_is_not_found(gh: FakeGitHub, app_key: rsa.RSAPrivateKey) -> None:
    gh.configure_app(APP_ID, public_pem(app_key), INSTALLATION)

    assert exchange(gh, app_jwt(app_key), installation=INSTALLATION + 1).status_code == 404


def test_an_installation_token_stops_working_when_it_expires(
    gh: FakeGitHub, app_key: rsa.RSAPrivateKey
) -> None:
    # Long enough that a loaded box still makes the first call in time.
    gh.configure_app(APP_ID, public_pem(app_key), INSTALLATION, token_ttl=5.0)
    token = exchange(gh, app_jwt(app_key)).json()["token"]
    repo = f"{gh.url}/repos/{gh.repository}"

    assert httpx.get(repo, headers={"Authorization": f"token {token}"}).is_success
    time.sleep(5.1)
    expired = httpx.get(repo, headers={"Authorization": f"token {token}"})
    assert (expired.status_code, expired.json()["message"]) == (401, "Bad credentials")


def test_the_exchange_takes_queued_faults_like_any_request(
    gh: FakeGitHub, app_key: rsa.RSAPrivateKey
) -> None:
    gh.configure_app(APP_ID, public_pem(app_key), INSTALLATION)
    gh.fail_next(status=502)

    assert exchange(gh, app_jwt(app_key)).status_code == 502
    assert exchange(gh, app_jwt(app_key)).status_code == 201
    assert [r.path for r in gh.requests] == [f"/app/installations/{INSTALLATION}/access_tokens"] * 2


# --- who created what, and lists as GitHub filters and delays them -----------------------


def test_lists_filter_by_creator_and_by_last_update_since(
    gh: FakeGitHub, api: httpx.Client, app_key: rsa.RSAPrivateKey
) -> None:
    gh.add_issue("Someone else's", user="octocat")
    old = gh.add_issue("Ours, old")
    cut = time.time()
    time.sleep(1.1)  # GitHub's timestamps are whole seconds
    new_issue(api, title="Ours, new")
    gh.configure_app(APP_ID, public_pem(app_key), INSTALLATION)
    token = exchange(gh, app_jwt(app_key)).json()["token"]
    as_app = httpx.post(
        f"{gh.url}/repos/{gh.repository}/issues",
        headers={"Authorization": f"Bearer {token}"},
        json={"title": "The app's"},
    )
    since = datetime.fromtimestamp(cut + 1, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")

    def titles(**query: str) -> list[str]:
        answer = api.get("/issues", params={"state": "all", **query})
        assert answer.status_code == 200, answer.text
        return [i["title"] for i in answer.json()]

    assert as_app.status_code == 201 and as_app.json()["user"]["login"] == f"{APP_SLUG}[bot]"
    assert titles(creator=TOKEN_LOGIN) == ["Ours, new", "Ours, old"]
    assert titles(creator="octocat") == ["Someone else's"]
    assert titles(since=since) == ["The app's", "Ours, new"]
    assert titles(creator=TOKEN_LOGIN, since=since) == ["Ours, new"]
    assert api.get("/issues", params={"since": "yesterday"}).status_code == 422
    gh.add_comments(old["number"], ["bumped"])  # a comment updates the issue
    assert titles(creator=TOKEN_LOGIN, since=since) == ["Ours, new", "Ours, old"]


def test_what_was_just_created_shows_in_lists_only_after_the_lag(
    gh: FakeGitHub, api: httpx.Client
) -> None:
    gh.list_lag = 1.0
    created = new_issue(api).json()
    comment = api.post(f"/issues/{created['number']}/comments", json={"body": "hi"})

    assert api.get("/issues").json() == []  # not listed yet…
    assert api.get(f"/issues/{created['number']}/comments").json() == []
    assert api.get(f"/issues/{created['number']}").status_code == 200  # …but there
    assert comment.status_code == 201 and len(gh.comments(created["number"])) == 1

    deadline = time.monotonic() + 10
    while not (
        api.get("/issues").json() and api.get(f"/issues/{created['number']}/comments").json()
    ):
        assert time.monotonic() < deadline, "never listed"
        time.sleep(0.05)


def test_comments_are_filtered_by_since(gh: FakeGitHub, api: httpx.Client) -> None:
    number = gh.add_issue()["number"]
    gh.add_comments(number, [f"old {n}" for n in range(3)])
    cut = time.time()
    time.sleep(1.1)
    gh.add_comments(number, ["new"])
    since = datetime.fromtimestamp(cut + 1, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")

    listed = api.get(f"/issues/{number}/comments", params={"since": since}).json()

    assert [c["body"] for c in listed] == ["new"]
    assert len(api.get(f"/issues/{number}/comments").json()) == 4


def test_the_user_is_the_tokens_owner_and_the_app_is_known_by_its_slug(
    gh: FakeGitHub, app_key: rsa.RSAPrivateKey
) -> None:
    gh.configure_app(APP_ID, public_pem(app_key), INSTALLATION)
    token = exchange(gh, app_jwt(app_key)).json()["token"]

    me = httpx.get(f"{gh.url}/user", headers={"Authorization": f"Bearer {TOKEN}"})
    as_app = httpx.get(f"{gh.url}/user", headers={"Authorization": f"Bearer {token}"})
    app = httpx.get(f"{gh.url}/app", headers={"Authorization": f"Bearer {app_jwt(app_key)}"})
    no_jwt = httpx.get(f"{gh.url}/app", headers={"Authorization": f"Bearer {TOKEN}"})

    assert (me.status_code, me.json()["login"]) == (200, TOKEN_LOGIN)
    assert as_app.status_code == 403  # an installation token has no user
    assert (app.status_code, app.json()["slug"]) == (200, APP_SLUG)
    assert no_jwt.status_code == 401


def test_an_outage_lasts_until_calm(gh: FakeGitHub, api: httpx.Client) -> None:
    gh.fail_next(502, times=OUTAGE)
    assert {api.get("/issues").status_code for _ in range(5)} == {502}
    gh.calm()
    assert api.get("/issues").status_code == 200
    gh.chaos(1.0, ["502"], seed=1)
    assert api.get("/issues").status_code == 502
    gh.calm()
    assert api.get("/issues").status_code == 200
