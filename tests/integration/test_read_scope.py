"""What a `read` key sees, on the real embedded service: held and security-sensitive reports,
local security issues and other reporters' titles are for `admin`; `read` answers are
redacted. Health shows statuses to everyone and details to `admin`, and probes asking many
times a second cost the store one query a second."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from ai_pipeline.api.app import create_app
from ai_pipeline.bootstrap import Container, bootstrap
from tests.conftest import make_settings
from tests.factories import report_dict
from tests.integration.test_api_auth import Api
from tests.integration.test_console_api import XSS, completed, held

EMAIL = "ana.lopez@example.com"


class Callers:
    def __init__(self, api: Api):
        self.api = api
        self.admin, _ = api.add_key("admin")
        self.reader, _ = api.add_key("read")
        self.submitter, _ = api.add_key("submit")

    def get(self, path: str, secret: str | None) -> Any:
        headers = {"X-API-Key": secret} if secret else {}
        return self.api.client.get(path, headers=headers)

    def submit(self, **fields: Any) -> str:
        answer = self.api.client.post(
            "/api/v1/bug-reports",
            json=report_dict(**fields),
            headers={"X-API-Key": self.submitter},
        )
        assert answer.status_code == 201, answer.text
        rid: str = answer.json()["request_id"]
        return rid

    def wait(self, rid: str, done: Any, timeout: float = 60) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            doc: dict[str, Any] = self.get(f"/api/v1/requests/{rid}/status", self.admin).json()
            if done(doc):
                return doc
            assert time.monotonic() < deadline, f"{rid}: never reached; last {doc}"
            time.sleep(0.05)


@pytest.fixture
def container(tmp_path: Path) -> Container:
    settings = make_settings(
        f"sqlite:///{tmp_path / 'p.db'}", review_hold="security", auth_cache_seconds=0
    )
    return bootstrap(settings)


@pytest.fixture
def callers(container: Container) -> Iterator[Callers]:
    with TestClient(create_app(container), raise_server_exceptions=False) as client:
        yield Callers(Api(container, client))


def test_a_security_report_is_for_admin_only_held_filed_or_in_flight(callers: Callers) -> None:
    rid = callers.submit(**XSS)
    callers.wait(rid, held)

    (mine,) = callers.get("/api/v1/reviews", callers.admin).json()["reviews"]
    assert mine["title"] == XSS["title"] and mine["triage"]["security_sensitive"]
    (theirs,) = callers.get("/api/v1/reviews", callers.reader).json()["reviews"]
    assert theirs["request_id"] == rid and theirs["title"] is None
    assert theirs["description"] is None and theirs["triage"] == {}
    assert "withheld" in theirs and XSS["title"] not in str(theirs)

    status = callers.get(f"/api/v1/requests/{rid}/status", callers.reader).json()
    assert status["status"] == "processing"
    assert all(set(p["data"]) == {"withheld"} for p in status["progress"].values())
    listed = callers.get("/api/v1/requests?status=all", callers.reader).json()["requests"]
    assert "security_sensitive" not in str(listed)

    released = callers.api.client.post(
        f"/api/v1/reviews/{rid}", json={}, headers={"X-API-Key": callers.admin}
    )
    assert released.status_code == 202, released.text
    number = callers.wait(rid, completed)["github_issue_number"]
    filed = callers.get(f"/api/v1/issues/{number}", callers.admin)
    assert filed.status_code == 200 and "security" in filed.json()["labels"]
    assert callers.get(f"/api/v1/issues/{number}", callers.reader).status_code == 404
    issues = callers.get("/api/v1/issues", callers.reader).json()
    assert (issues["issues"], issues["pagination"]["total"]) == ([], 0)
    assert callers.get("/api/v1/issues", callers.admin).json()["pagination"]["total"] == 1
    done = callers.get(f"/api/v1/requests/{rid}/status", callers.reader).json()
    assert done["github_issue_url"] is None


def test_other_reporters_titles_reach_read_redacted(callers: Callers) -> None:
    title = f"Editor crashes saving the report that {EMAIL} attached"
    first = callers.submit(title=title)
    callers.wait(first, completed)
    second = callers.submit(title=title)
    callers.wait(second, completed)

    def candidates(secret: str) -> list[dict[str, Any]]:
        doc = callers.get(f"/api/v1/requests/{second}/status", secret).json()
        found: list[dict[str, Any]] = doc["progress"]["triage"]["data"]["duplicate_candidates"]
        return found

    assert candidates(callers.admin)[0]["title"] == title
    shown = candidates(callers.reader)[0]
    assert shown["bug_report_id"] and EMAIL not in shown["title"]
    assert "[REDACTED:email]" in shown["title"]
    body = callers.get("/api/v1/requests?status=all", callers.reader).text
    assert EMAIL not in body


def test_health_shows_statuses_to_all_and_details_to_admin(callers: Callers) -> None:
    for secret in (None, callers.reader):
        doc = callers.get("/api/v1/health", secret).json()
        assert doc["status"] in ("healthy", "degraded")
        assert all(set(c) == {"status"} for c in doc["components"].values()), doc
    full = callers.get("/api/v1/health", callers.admin).json()
    assert full["components"]["state"]["backend"] == "sqlite" and full["components"]["state"][
        "path"
    ].endswith("p.db")


def test_an_open_service_shows_everything(tmp_path: Path) -> None:
    container = bootstrap(make_settings(f"sqlite:///{tmp_path / 'p.db'}"))
    with TestClient(create_app(container)) as client:
        assert client.get("/api/v1/health").json()["components"]["state"]["backend"] == "sqlite"


def test_health_and_metrics_ask_the_store_about_once_a_second(tmp_path: Path) -> None:
    # No background export of the lag: what is counted is what the scrapes ask.
    settings = make_settings(f"sqlite:///{tmp_path / 'p.db'}", lag_interval_seconds=3600)
    container = bootstrap(settings)
    lags = 0
    lag = container.bus.lag

    async def counted_lag() -> dict[tuple[str, str], int]:
        nonlocal lags
        lags += 1
        return await lag()

    container.bus.lag = counted_lag  # type: ignore[method-assign]
    with TestClient(create_app(container, agents=())) as client:
        stats = container.store.operations
        before = stats["sqlite|stats"]
        lags = 0
        started = time.monotonic()
        for _ in range(30):
            assert client.get("/api/v1/health").status_code == 200
            assert client.get("/api/v1/metrics").status_code == 200
            assert client.get("/metrics").status_code == 200
        seconds = time.monotonic() - started
        # One computation per second at most (and one more for the second it started in):
        # the health document reads stats twice, the metrics document once.
        rounds = int(seconds) + 2
        assert stats["sqlite|stats"] - before <= 3 * rounds, (stats, seconds)
        assert lags <= rounds, (lags, seconds)
