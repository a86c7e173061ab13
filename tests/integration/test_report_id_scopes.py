"""Report ids (and Idempotency-Keys) belong to the API key that submitted them, on both stores
(SQLite, and a real Redis): another client's colliding id is a new report, never that
client's request; the same id with another report from the same key is a 409; and a
resubmission is recognised for the lookup's own lifetime (30 days), long after the request's
record expired in Redis (24 h)."""

from __future__ import annotations

import sqlite3
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import anyio
import pytest
from fastapi.testclient import TestClient

from ai_pipeline.adapters.keys.redis import NAMES as KEY_STORE_NAMES
from ai_pipeline.adapters.state.redis_flush import spared
from ai_pipeline.api.app import create_app
from ai_pipeline.bootstrap import bootstrap
from ai_pipeline.domain.events import Step, StepChanged, StepStatus, utcnow
from ai_pipeline.domain.models import BugReport, FiledIssue
from ai_pipeline.domain.request_state import RequestStatus, new_request
from ai_pipeline.domain.submissions import IdConflict
from ai_pipeline.rebuild import rebuild_state
from tests.conftest import make_settings
from tests.factories import report, report_dict
from tests.integration.test_api_auth import Api, assert_envelope
from tests.integration.test_auth_modes import on_redis

STORES = ["sqlite", pytest.param("redis", marks=pytest.mark.services)]


def settings_for(
    kind: str, tmp_path: Path, request: pytest.FixtureRequest, **overrides: Any
) -> Any:
    db = f"sqlite:///{tmp_path / 'p.db'}"
    if kind == "sqlite":
        return make_settings(db, auth_cache_seconds=0, **overrides)
    redis_server: Any = request.getfixturevalue("redis_server")
    prefix = f"ids-{uuid.uuid4().hex[:10]}:"
    return make_settings(
        db, state=redis_server.url, redis_key_prefix=prefix, auth_cache_seconds=0, **overrides
    )


@contextmanager
def serving(settings: Any) -> Iterator[Api]:
    container = bootstrap(settings)
    with TestClient(create_app(container, agents=()), raise_server_exceptions=False) as client:
        yield Api(container, client)


@pytest.fixture(params=STORES)
def api(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Api]:
    with serving(settings_for(request.param, tmp_path, request)) as api:
        yield api


def post(api: Api, body: dict[str, Any], secret: str | None = None, **headers: str) -> Any:
    if secret is not None:
        headers["X-API-Key"] = secret
    return api.client.post("/api/v1/bug-reports", json=body, headers=headers)


def stored_report(api: Api, request_id: str) -> BugReport | None:
    assert api.client.portal is not None
    found: BugReport | None = api.client.portal.call(api.container.store.get_report, request_id)
    return found


def test_two_keys_may_use_the_same_report_id(api: Api) -> None:
    alice, _ = api.add_key("submit", "read")
    bob, _ = api.add_key("submit", "read")
    hers = report_dict(id="BUG-1", title="Alice's crash on save")
    his = report_dict(id="BUG-1", title="Bob's crash on print")
    first = post(api, hers, alice)
    second = post(api, his, bob)
    assert (first.status_code, second.status_code) == (201, 201), second.text
    assert first.json()["request_id"] != second.json()["request_id"]
    for answer, body in ((first, hers), (second, his)):
        rid = answer.json()["request_id"]
        found = stored_report(api, rid)
        assert found is not None and found.title == body["title"]  # nothing dropped
        status = api.read(alice, f"/api/v1/requests/{rid}/status").json()
        assert status["bug_report_id"] == "BUG-1"  # the contract's field, as sent


def test_a_retry_from_the_same_key_returns_its_own_request(api: Api) -> None:
    alice, _ = api.add_key("submit")
    body = report_dict(id="BUG-7")
    first, again = post(api, body, alice), post(api, dict(reversed(body.items())), alice)
    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json()["request_id"] == first.json()["request_id"]


def test_the_same_id_with_another_report_from_the_same_key_is_a_conflict(api: Api) -> None:
    alice, _ = api.add_key("submit", "read")
    first = post(api, report_dict(id="BUG-9", title="Crash on save"), alice)
    changed = post(api, report_dict(id="BUG-9", title="Crash on print"), alice)
    error = assert_envelope(changed, 409, "INVALID_REQUEST")
    assert error["details"] == {
        "field": "id",
        "value": "BUG-9",
        "request_id": first.json()["request_id"],
    }
    everything = api.read(alice, "/api/v1/requests?status=all").json()
    assert everything["pagination"]["total"] == 1


def test_an_idempotency_key_is_scoped_and_checked_like_an_id(api: Api) -> None:
    alice, _ = api.add_key("submit")
    bob, _ = api.add_key("submit")
    body = report_dict()
    first = post(api, body, alice, **{"Idempotency-Key": "order-1"})
    retry = post(api, body, alice, **{"Idempotency-Key": "order-1"})
    assert (first.status_code, retry.status_code) == (201, 200)
    assert retry.json()["request_id"] == first.json()["request_id"]
    other = post(api, report_dict(), alice, **{"Idempotency-Key": "order-1"})
    error = assert_envelope(other, 409, "INVALID_REQUEST")
    assert error["details"]["field"] == "Idempotency-Key"
    bobs = post(api, report_dict(), bob, **{"Idempotency-Key": "order-1"})
    assert bobs.status_code == 201


def test_an_open_service_has_one_scope(api: Api) -> None:
    body = report_dict(id="BUG-3")
    first, again = post(api, body), post(api, body)
    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json()["request_id"] == first.json()["request_id"]
    assert_envelope(post(api, report_dict(id="BUG-3")), 409, "INVALID_REQUEST")


# ---------------------------------------------------------------------------------------------
# Lifetimes: the lookups outlive the request's record (Redis), and then expire themselves


def ended(rid: str) -> list[StepChanged]:
    at = utcnow()
    issue = FiledIssue(number=1, url="https://tracker.test/1")
    return [
        StepChanged(request_id=rid, step=step, status=StepStatus.COMPLETED, at=at, issue=issue)
        for step in (Step.TRIAGE, Step.TICKET_CREATION, Step.GITHUB)
    ]


@pytest.mark.services
@pytest.mark.anyio
async def test_a_resubmission_after_the_record_expired_files_nothing_new(
    tmp_path: Path, redis_server: Any
) -> None:
    settings = make_settings(
        f"sqlite:///{tmp_path / 'bus.db'}",
        state=redis_server.url,
        redis_key_prefix=f"ttl-{uuid.uuid4().hex[:10]}:",
        state_ttl_seconds=0.5,
    )
    c = bootstrap(settings)
    await c.bus.start()
    await c.store.start()
    try:
        r = report()
        await c.store.create_request(new_request("first", r.id, utcnow()), r, None)
        for event in ended("first"):
            await c.store.apply(event)
        deadline = time.monotonic() + 15
        while await c.store.get("first") is not None:  # the record's 0.5 s run out
            assert time.monotonic() < deadline
            await anyio.sleep(0.05)
        state, created = await c.store.create_request(
            new_request("second", r.id, utcnow()), r, None
        )
        assert not created, "a resubmission after the record expired made a second request"
        assert (state.request_id, state.status) == ("first", RequestStatus.COMPLETED)
    finally:
        await c.store.close()
        await c.bus.close()


@pytest.mark.parametrize("kind", STORES)
@pytest.mark.anyio
async def test_lookups_expire_after_their_own_lifetime(
    kind: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    settings = settings_for(
        kind, tmp_path, request, state_ttl_seconds=0.2, idempotency_ttl_seconds=3.0
    )
    c = bootstrap(settings)
    await c.bus.start()
    await c.store.start()
    try:
        r = report()
        await c.store.create_request(new_request("first", r.id, utcnow()), r, "k-1")
        for event in ended("first"):  # the lifetime counts from its last change
            await c.store.apply(event)
        again, created = await c.store.create_request(new_request("x", r.id, utcnow()), r, "k-1")
        assert not created and again.request_id == "first"  # still within the lifetime
        deadline = time.monotonic() + 15
        while True:
            forgotten = await c.store.expire_lookups()
            fresh, created = await c.store.create_request(
                new_request("second", r.id, utcnow()), r, "k-1"
            )
            if created:
                break
            assert time.monotonic() < deadline, f"lookup never expired ({forgotten})"
            await anyio.sleep(0.1)
        assert fresh.request_id == "second"
        if kind == "sqlite":
            assert forgotten == 1  # one request's lookups: its id and its Idempotency-Key
    finally:
        await c.store.close()
        await c.bus.close()


@pytest.mark.parametrize("kind", STORES)
@pytest.mark.anyio
async def test_a_request_still_in_flight_keeps_its_lookups_past_their_lifetime(
    kind: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """The lifetime counts from the end: a report held for review longer than it must still
    be recognised, or its resubmission files a second issue."""
    settings = settings_for(kind, tmp_path, request, idempotency_ttl_seconds=0.5)
    c = bootstrap(settings)
    await c.bus.start()
    await c.store.start()
    try:
        held, done = report(), report()
        await c.store.create_request(new_request("held", held.id, utcnow()), held, "k-held")
        await c.store.create_request(new_request("done", done.id, utcnow()), done, None)
        for event in ended("done"):
            await c.store.apply(event)
        # Wait until the ended request's lookup has run out: the in-flight one's is as old.
        deadline = time.monotonic() + 15
        while True:
            await c.store.expire_lookups()
            _, created = await c.store.create_request(
                new_request(f"done-{uuid.uuid4().hex[:6]}", done.id, utcnow()), done, None
            )
            if created:
                break
            assert time.monotonic() < deadline, "the ended request's lookup never expired"
            await anyio.sleep(0.1)
        state, created = await c.store.create_request(
            new_request("again", held.id, utcnow()), held, "k-held"
        )
        assert not created, "an in-flight request's lookup expired: a second request"
        assert state.request_id == "held"
        other = report()  # its Idempotency-Key is still known too
        with pytest.raises(IdConflict):
            await c.store.create_request(new_request("x", other.id, utcnow()), other, "k-held")
    finally:
        await c.store.close()
        await c.bus.close()


@pytest.mark.services
def test_a_rebuild_restores_each_lookup_in_its_own_scope(tmp_path: Path, redis_server: Any) -> None:
    with on_redis(tmp_path, redis_server) as (api, prefix):
        alice, _ = api.add_key("submit")
        bob, _ = api.add_key("submit")
        body = report_dict(id="BUG-5")
        hers = post(api, body, alice).json()["request_id"]
        assert api.client.portal is not None
        c = api.container
        # Redis lost all but the API keys: only the log can bring the rest back.
        _, names = redis_server.command("SCAN", "0", "MATCH", f"{prefix}*", "COUNT", 100_000)
        lost = [n for n in names if not spared(n.decode(), prefix, KEY_STORE_NAMES)]
        redis_server.command("DEL", *lost)
        assert api.client.portal.call(c.store.get, hers) is None
        api.client.portal.call(rebuild_state, c.bus, c.store)
        again = post(api, body, alice)
        assert (again.status_code, again.json()["request_id"]) == (200, hers)
        assert post(api, body, bob).status_code == 201
        assert_envelope(post(api, report_dict(id="BUG-5"), alice), 409, "INVALID_REQUEST")


# ---------------------------------------------------------------------------------------------
# A file from before ids were scoped

OLD_REQUESTS = """
CREATE TABLE requests (
    request_id TEXT PRIMARY KEY,
    bug_report_id TEXT NOT NULL UNIQUE,
    idempotency_key TEXT,
    status TEXT NOT NULL,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL,
    processing_seconds REAL,
    state TEXT NOT NULL,
    report TEXT
);
CREATE UNIQUE INDEX requests_by_idempotency_key
    ON requests (idempotency_key) WHERE idempotency_key IS NOT NULL;
"""


def test_a_file_with_global_ids_is_migrated_into_the_open_scope(tmp_path: Path) -> None:
    path = tmp_path / "p.db"
    old = report(id="BUG-OLD")
    state = new_request("old-request", old.id, utcnow())
    conn = sqlite3.connect(path)
    with conn:
        conn.executescript(OLD_REQUESTS)
        conn.execute(
            "INSERT INTO requests VALUES (?, ?, ?, ?, ?, ?, NULL, ?, ?)",
            (
                state.request_id,
                old.id,
                "key-old",
                "submitted",
                state.created_at.timestamp(),
                state.updated_at.timestamp(),
                state.model_dump_json(),
                old.model_dump_json(),
            ),
        )
    conn.close()
    with serving(make_settings(f"sqlite:///{path}", auth_cache_seconds=0)) as api:
        body = old.model_dump(mode="json")
        again = post(api, body)
        assert (again.status_code, again.json()["request_id"]) == (200, "old-request")
        keyed = post(api, report_dict(), **{"Idempotency-Key": "key-old"})
        assert_envelope(keyed, 409, "INVALID_REQUEST")
        alice, _ = api.add_key("submit")
        assert post(api, body, alice).status_code == 201  # another scope: same id, new request
    tables = sqlite3.connect(path).execute("SELECT name FROM sqlite_master").fetchall()
    assert ("requests_with_global_ids",) not in tables
