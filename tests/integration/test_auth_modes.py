"""AI_PIPELINE_AUTH on the assembled API over a real Redis (the deployed wiring): an emptied
key store (a flush of the ``apikey*`` keys, an eviction, a failover to an empty replica)
must close the API under ``required``, never open it; ``open`` needs no key at all."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from structlog.testing import capture_logs

from ai_pipeline.api.app import create_app
from ai_pipeline.bootstrap import bootstrap
from tests.conftest import make_settings
from tests.integration.test_api_auth import Api, assert_envelope

pytestmark = pytest.mark.services


@contextmanager
def on_redis(tmp_path: Path, redis_server: Any, **overrides: Any) -> Iterator[tuple[Api, str]]:
    prefix = f"auth-{uuid.uuid4().hex[:10]}:"
    settings = make_settings(
        f"sqlite:///{tmp_path / 'bus.db'}",
        state=redis_server.url,
        redis_key_prefix=prefix,
        auth_cache_seconds=0,
        **overrides,
    )
    container = bootstrap(settings)
    with TestClient(create_app(container, agents=()), raise_server_exceptions=False) as client:
        yield Api(container, client), prefix


def flush_api_keys(redis_server: Any, prefix: str) -> int:
    """What ``emergency-recovery.sh --flush`` did to them: every ``apikey*`` key gone."""
    _, found = redis_server.command("SCAN", "0", "MATCH", f"{prefix}apikey*", "COUNT", 10_000)
    return int(redis_server.command("DEL", *found)) if found else 0


@pytest.mark.parametrize(("mode", "after_flush"), [("auto", 201), ("required", 503)])
def test_an_emptied_key_store_opens_the_api_only_in_auto_mode(
    tmp_path: Path, redis_server: Any, mode: str, after_flush: int
) -> None:
    with on_redis(tmp_path, redis_server, auth=mode) as (api, prefix):
        secret, _ = api.add_key("submit", "read")
        assert api.submit(secret).status_code == 201
        assert_envelope(api.submit(), 401, "UNAUTHORIZED")
        assert flush_api_keys(redis_server, prefix) >= 3
        anonymous = api.submit()
        assert anonymous.status_code == after_flush, anonymous.text
        if mode == "required":
            error = assert_envelope(anonymous, 503, "SERVICE_UNAVAILABLE")
            assert "AI_PIPELINE_AUTH=required" in error["message"]
            assert_envelope(api.read(), 503, "SERVICE_UNAVAILABLE")
            assert_envelope(api.submit(secret), 503, "SERVICE_UNAVAILABLE")
            assert api.refusals("no_keys") == 3
            # Probes and scrapers still reach the service: it is up, its keys are not.
            assert api.client.get("/api/v1/health").status_code == 200
            assert api.client.get("/metrics").status_code == 200


def test_required_without_any_key_refuses_from_the_start_and_says_so(
    tmp_path: Path, redis_server: Any
) -> None:
    with capture_logs() as logs, on_redis(tmp_path, redis_server, auth="required") as (api, _):
        assert_envelope(api.submit(), 503, "SERVICE_UNAVAILABLE")
        assert_envelope(api.read(path="/api/v1/requests/x/status"), 503, "SERVICE_UNAVAILABLE")
        secret, _ = api.add_key("submit")
        assert api.submit(secret).status_code == 201
        assert_envelope(api.submit(), 401, "UNAUTHORIZED")
    events = [e["event"] for e in logs]
    assert "api_closed_no_keys" in events and "api_open_no_keys" not in events


def test_open_mode_needs_no_key_even_when_keys_exist(tmp_path: Path, redis_server: Any) -> None:
    with capture_logs() as logs, on_redis(tmp_path, redis_server, auth="open") as (api, _):
        api.add_key("admin")
        assert api.submit().status_code == 201
        assert api.read().status_code == 200
    assert any(e["event"] == "api_open_by_setting" for e in logs)


def test_an_unknown_mode_is_refused_at_start(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="auth"):
        make_settings(f"sqlite:///{tmp_path / 'p.db'}", auth="closed")
