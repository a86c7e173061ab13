"""Shared fixtures: every test gets its own database file, metrics registry and settings."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ai_pipeline.settings import Settings

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
        "lag_interval_seconds": 0.2,
        "duplicate_index_size": 1000,
        "log_json": True,
        "log_level": "WARNING",
        **overrides,
    }
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


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
