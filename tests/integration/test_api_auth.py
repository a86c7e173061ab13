"""Keys, scopes and rate limits on the assembled API (real SQLite stores, in-process): the
ingest fast path and the framework's routes answer alike."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from structlog.testing import capture_logs

from ai_pipeline.api.app import create_app
from ai_pipeline.bootstrap import Container, bootstrap
from ai_pipeline.domain.api_keys import hash_secret, new_key_id, new_secret
from ai_pipeline.ports import ApiKey
from tests.conftest import make_settings
from tests.factories import report_dict


class Api:
    def __init__(self, container: Container, client: TestClient):
        self.container = container
        self.client = client

    def add_key(self, *scopes: str, **limits: int | None) -> tuple[str, ApiKey]:
        secret = new_secret()
        key = ApiKey(new_key_id(), "test", frozenset(scopes), time.time(), **limits)
        assert self.client.portal is not None
        self.client.portal.call(self.container.keys.add, key, hash_secret(secret))
        return secret, key

    def revoke(self, key: ApiKey) -> None:
        assert self.client.portal is not None
        assert self.client.portal.call(self.container.keys.revoke, key.key_id)

    def submit(self, secret: str | None = None, **headers: str) -> Any:
        if secret is not None:
            headers["X-API-Key"] = secret
        return self.client.post("/api/v1/bug-reports", json=report_dict(), headers=headers)

    def read(self, secret: str | None = None, path: str = "/api/v1/requests") -> Any:
        headers = {"X-API-Key": secret} if secret else {}
        return self.client.get(path, headers=headers)

    def refusals(self, reason: str) -> float:
        registry = self.container.metrics.registry
        value = registry.get_sample_value("ai_pipeline_auth_refusals_total", {"reason": reason})
        return value or 0.0


@contextmanager
def started(tmp_path: Path, **overrides: Any) -> Iterator[Api]:
    settings = make_settings(
        f"sqlite:///{tmp_path / 'p.db'}", **{"auth_cache_seconds": 0, **overrides}
    )
    container = bootstrap(settings)
    with TestClient(create_app(container, agents=()), raise_server_exceptions=False) as client:
        yield Api(container, client)


@pytest.fixture
def api(tmp_path: Path) -> Iterator[Api]:
    with started(tmp_path) as api:
        yield api


def assert_envelope(response: Any, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    error: dict[str, Any] = response.json()["error"]
    assert error["code"] == code and error["message"]
    assert error["request_id"] == response.headers["x-request-id"]
    return error


def test_without_any_key_the_api_is_open_and_says_so_at_start(tmp_path: Path) -> None:
    with capture_logs() as logs, started(tmp_path) as api:
        assert api.submit().status_code == 201
        assert api.read().status_code == 200
    assert any(e["event"] == "api_open_no_keys" and e["log_level"] == "warning" for e in logs)


def test_once_a_key_exists_a_request_without_one_is_refused_401(api: Api) -> None:
    api.add_key("submit")
    for response in (api.submit(), api.read()):
        assert_envelope(response, 401, "UNAUTHORIZED")
        assert response.headers["www-authenticate"].startswith("Bearer")
    assert api.refusals("missing") == 2


def test_an_unknown_secret_is_refused_401(api: Api) -> None:
    api.add_key("submit")
    assert_envelope(api.submit(new_secret()), 401, "UNAUTHORIZED")
    assert api.refusals("unknown") == 1


def test_the_secret_is_accepted_as_a_header_or_a_bearer_token(api: Api) -> None:
    secret, _ = api.add_key("submit", "read")
    assert api.submit(secret).status_code == 201
    assert api.submit(Authorization=f"Bearer {secret}").status_code == 201
    assert api.read(secret).status_code == 200
    bearer = api.client.get("/api/v1/requests", headers={"Authorization": f"Bearer {secret}"})
    assert bearer.status_code == 200
    assert_envelope(api.submit(Authorization=f"Basic {secret}"), 401, "UNAUTHORIZED")


def test_a_key_without_the_scope_is_refused_403(api: Api) -> None:
    submit_only, _ = api.add_key("submit")
    read_only, _ = api.add_key("read")
    assert_envelope(api.read(submit_only), 403, "FORBIDDEN")
    assert_envelope(api.submit(read_only), 403, "FORBIDDEN")
    assert api.read(read_only, "/api/v1/metrics").status_code == 200
    assert api.refusals("scope") == 2


def test_admin_grants_every_scope(api: Api) -> None:
    admin, _ = api.add_key("admin")
    assert api.submit(admin).status_code == 201
    assert api.read(admin).status_code == 200
    assert api.read(admin, "/api/v1/issues").status_code == 200


def test_a_revoked_key_is_refused_401_and_the_refusal_names_it_not_its_secret(
    api: Api,
) -> None:
    api.add_key("read")  # another key keeps the API closed
    secret, key = api.add_key("submit")
    assert api.submit(secret).status_code == 201
    api.revoke(key)
    with capture_logs() as logs:
        error = assert_envelope(api.submit(secret), 401, "UNAUTHORIZED")
    assert "revoked" in error["message"]
    (refused,) = [e for e in logs if e["event"] == "auth_refused"]
    assert refused["reason"] == "revoked" and refused["key_id"] == key.key_id
    assert refused["route"] == "/api/v1/bug-reports" and refused["client"]
    assert secret not in repr(logs)


def test_health_docs_and_prometheus_stay_open(api: Api) -> None:
    api.add_key("submit")
    for path in ("/api/v1/health", "/metrics", "/openapi.json"):
        assert api.client.get(path).status_code == 200, path
    assert api.client.get("/metrics").text.count("ai_pipeline_auth_refusals") > 0


def test_prometheus_needs_the_read_scope_when_not_public(tmp_path: Path) -> None:
    with started(tmp_path, metrics_public=False) as api:
        reader, _ = api.add_key("read")
        assert_envelope(api.client.get("/metrics"), 401, "UNAUTHORIZED")
        scraped = api.client.get("/metrics", headers={"Authorization": f"Bearer {reader}"})
        assert scraped.status_code == 200 and "x-ratelimit-limit" not in scraped.headers


def test_limited_answers_carry_the_rate_limit_headers_then_429_with_retry_after(
    api: Api,
) -> None:
    secret, _ = api.add_key("submit", submit_per_hour=2)
    first, second, third = (api.submit(secret) for _ in range(3))
    assert first.status_code == second.status_code == 201
    assert first.headers["x-ratelimit-limit"] == "2"
    assert [r.headers["x-ratelimit-remaining"] for r in (first, second, third)] == ["1", "0", "0"]
    assert first.headers["x-ratelimit-window"] == "3600"
    reset = int(first.headers["x-ratelimit-reset"])
    assert time.time() < reset <= time.time() + 3600
    assert_envelope(third, 429, "RATE_LIMIT_EXCEEDED")
    assert 1 <= int(third.headers["retry-after"]) <= 3600
    assert third.headers["x-ratelimit-reset"] == str(reset)
    assert api.refusals("rate_limited") == 1


def test_reads_count_against_their_own_limit(tmp_path: Path) -> None:
    with started(tmp_path, rate_limit_read_per_hour=1) as api:
        secret, _ = api.add_key("submit", "read")
        assert api.read(secret).headers["x-ratelimit-limit"] == "1"
        assert_envelope(api.read(secret), 429, "RATE_LIMIT_EXCEEDED")
        assert api.submit(secret).headers["x-ratelimit-limit"] == "100"  # the default


def test_an_unlimited_key_is_never_throttled_and_gets_no_limit_headers(tmp_path: Path) -> None:
    with started(tmp_path, rate_limit_submit_per_hour=1) as api:
        secret, _ = api.add_key("submit", submit_per_hour=0)
        responses = [api.submit(secret) for _ in range(3)]
        assert [r.status_code for r in responses] == [201, 201, 201]
        assert "x-ratelimit-limit" not in responses[0].headers


def test_the_per_address_limit_caps_requests_made_without_a_key(tmp_path: Path) -> None:
    with started(tmp_path, rate_limit_per_address_per_hour=2) as api:
        assert api.submit().headers["x-ratelimit-limit"] == "2"
        assert api.read().status_code == 200
        assert_envelope(api.submit(), 429, "RATE_LIMIT_EXCEEDED")
        assert api.client.get("/api/v1/health").status_code == 200  # never limited


def test_an_open_service_is_not_throttled_by_default(api: Api) -> None:
    responses = [api.submit() for _ in range(5)]
    assert {r.status_code for r in responses} == {201}
    assert "x-ratelimit-limit" not in responses[0].headers


def test_an_address_sending_wrong_keys_is_throttled_before_any_lookup(tmp_path: Path) -> None:
    with started(tmp_path, rate_limit_auth_failures_per_address_per_hour=3) as api:
        secret, _ = api.add_key("submit", "read")
        for _ in range(3):
            assert_envelope(api.read(new_secret()), 401, "UNAUTHORIZED")
        error = assert_envelope(api.read(new_secret()), 429, "RATE_LIMIT_EXCEEDED")
        assert "wrong API key" in error["message"]
        # The address is held off until the hour ends, whatever it sends now.
        held_off = api.read(secret)
        assert_envelope(held_off, 429, "RATE_LIMIT_EXCEEDED")
        assert 1 <= int(held_off.headers["retry-after"]) <= 3600
        assert api.refusals("unknown") == 3 and api.refusals("auth_failures") == 2


def test_missing_keys_do_not_count_as_wrong_ones(tmp_path: Path) -> None:
    with started(tmp_path, rate_limit_auth_failures_per_address_per_hour=1) as api:
        secret, _ = api.add_key("read")
        for _ in range(3):
            assert_envelope(api.read(), 401, "UNAUTHORIZED")
        assert api.read(secret).status_code == 200
