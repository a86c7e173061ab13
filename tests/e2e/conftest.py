"""Fixtures of the end-to-end tier."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.fakes.github_server import FakeGitHub, run_fake_github
from tests.fleet import TOKEN, Fleet


@pytest.fixture
def github() -> Iterator[FakeGitHub]:
    """A GitHub-shaped server the fleet files on, with the fleet's token."""
    with run_fake_github(token=TOKEN) as gh:
        yield gh


@pytest.fixture
def start_fleet(
    tmp_path: Path, kafka_broker: Any, redis_server: Any, github: FakeGitHub
) -> Iterator[Callable[..., Fleet]]:
    """``start_fleet(triage_agents=…, env=…)``: a started fleet, stopped after the test."""
    started: list[Fleet] = []

    def start(**options: Any) -> Fleet:
        fleet = Fleet(tmp_path, kafka_broker, redis_server, github, **options)
        started.append(fleet)
        return fleet.start()

    yield start
    for fleet in started:
        fleet.stop()
