"""Shared fixtures: every test gets its own database file, metrics registry and settings."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ai_pipeline.settings import Settings
from tests.service import local_services

REPO = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("AI_PIPELINE_DATA_DIR") or REPO.parent / "shared" / "data")


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def db_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'pipeline.db'}"


@pytest.fixture
def settings(db_url: str) -> Settings:
    return make_settings(db_url)


def make_settings(db_url: str, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "bus": db_url,
        "state": db_url,
        "retry_base_seconds": 0.01,
        "retry_max_seconds": 0.05,
        "sweep_interval_seconds": 0.2,
        "heartbeat_interval_seconds": 0.2,
        "lag_interval_seconds": 0.2,
        "duplicate_index_size": 1000,
        "log_json": True,
        "log_level": "WARNING",
        **overrides,
    }
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


def require_tool(name: str, *elsewhere: Path) -> str:
    """A command ``scripts/test-services.sh`` installs: on PATH or at one of ``elsewhere``.
    Skipped only outside CI; under CI its absence is a failure."""
    found = shutil.which(name) or next((str(p) for p in elsewhere if p.exists()), None)
    if found is not None:
        return found
    if os.environ.get("CI"):
        pytest.fail(f"{name} is missing under CI (scripts/test-services.sh installs it)")
    pytest.skip(f"{name} is absent and CI is unset: `make test` installs it")


def require_data() -> Path:
    """The shared data folder; skipped only on a user's clone, a failure under CI."""
    if DATA.exists():
        return DATA
    if os.environ.get("CI"):
        pytest.fail(f"{DATA} is missing under CI")
    pytest.skip(f"{DATA} is absent and CI is unset (a user's clone): data tests need it")


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for key in list(os.environ):
        if key.startswith("AI_PIPELINE_"):
            monkeypatch.delenv(key)
    yield


# Real Redis and Kafka (scripts/local_services.py, also behind `scripts/services`): each test
# session gets fresh instances on free loopback ports, stopped at the end.


def _started(service: Any) -> Iterator[Any]:
    """Start service for the session; skipped when it cannot be had, a failure under CI."""
    try:
        service.start()
    except Exception as error:  # an install or start failure, whatever its kind
        reason = f"{service.name} could not be installed or started: {error}"
        if os.environ.get("CI"):
            pytest.fail(reason, pytrace=False)
        pytest.skip(reason)
    try:
        yield service
    finally:
        try:
            service.stop()
        finally:
            service.kill()  # a no-op once stopped


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """A real redis-server (AOF on): .url, .port, .command(...), start(), stop(), kill()."""
    yield from _started(local_services.RedisServer(tmp_path_factory.mktemp("redis")))


@pytest.fixture(scope="session")
def kafka_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """A real single-node KRaft broker: .bootstrap, .port, .tool(...), start(), stop(), kill()."""
    yield from _started(local_services.KafkaBroker(tmp_path_factory.mktemp("kafka")))


@pytest.fixture(scope="session")
def llm_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """A real OpenAI-compatible LLM (llama.cpp + SmolLM2-135M, tests/llm_server.py):
    .base_url (…/v1), .url, .model. Skipped if it cannot start, a failure under CI."""
    from tests.llm_server import LlamaServer

    yield from _started(LlamaServer(tmp_path_factory.mktemp("llm")))


@pytest.fixture(scope="session")
def prism_github(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """Prism mocking GitHub's OpenAPI description, validating every request (tests/prism.py):
    .url, .port, .log(), start(), stop(), kill(). Prism and the description are installed by
    scripts/test-services.sh; skipped without them, a failure under CI."""
    from tests.prism import GITHUB_SPEC, PRISM, PrismServer

    prism = require_tool("prism", PRISM)
    spec = Path(require_tool(GITHUB_SPEC.name, GITHUB_SPEC))  # a file: never found on PATH
    yield from _started(PrismServer(tmp_path_factory.mktemp("prism"), spec=spec, prism=prism))
