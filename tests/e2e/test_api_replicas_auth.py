"""Two API processes on one Redis: a key created through the CLI is accepted by both, a
revocation reaches both, and a key's hourly limit is one count whichever process serves it.

Each API runs `serve --role api` with its own embedded bus (no agents needed here: the
test is about admission, not processing) and the shared Redis state under one key prefix.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.factories import report_dict
from tests.service import ServiceProcess

pytestmark = [pytest.mark.e2e, pytest.mark.services]


@pytest.fixture
def shared_env(redis_server: Any) -> dict[str, str]:
    return {
        "AI_PIPELINE_STATE": redis_server.url,
        "AI_PIPELINE_REDIS_KEY_PREFIX": f"auth-{uuid.uuid4().hex[:10]}:",
        # Short, so the test sees new keys and revocations quickly; 5 s by default.
        "AI_PIPELINE_AUTH_CACHE_SECONDS": "0.5",
        "AI_PIPELINE_LOG_LEVEL": "WARNING",
    }


@pytest.fixture
def apis(tmp_path: Path, shared_env: dict[str, str]) -> Iterator[list[ServiceProcess]]:
    processes = []
    for name in ("a", "b"):
        workdir = tmp_path / name
        workdir.mkdir()
        processes.append(ServiceProcess(workdir, shared_env, ["serve", "--role", "api"]))
    try:
        for process in processes:
            process.start()
        yield processes
    finally:
        for process in processes:
            process.stop()


def keys_cli(env: dict[str, str], cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ai_pipeline.cli", "keys", *args],
        env={**_base_env(), **env},
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def _base_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("AI_PIPELINE_")}


def submit(api: ServiceProcess, secret: str | None) -> httpx.Response:
    headers = {"Authorization": f"Bearer {secret}"} if secret else {}
    return httpx.post(
        f"{api.url}/api/v1/bug-reports", json=report_dict(), headers=headers, timeout=30
    )


def eventually(check: Callable[[], bool], timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.1)


def test_two_api_processes_share_keys_revocations_and_one_hourly_count(
    apis: list[ServiceProcess], shared_env: dict[str, str], tmp_path: Path
) -> None:
    assert all(submit(api, None).status_code == 201 for api in apis)  # open: no key yet
    created = keys_cli(
        shared_env, tmp_path, "create", "--name", "ci", "--scope", "submit",
        "--submit-per-hour", "5",
    )  # fmt: skip
    assert created.returncode == 0, created.stderr
    secret = created.stdout.strip()
    # Both close within their cache's lifetime, and both accept the new key.
    eventually(lambda: all(submit(api, None).status_code == 401 for api in apis))

    answers = [submit(apis[i % 2], secret) for i in range(7)]
    statuses = [r.status_code for r in answers]
    assert statuses == [201] * 5 + [429, 429], [r.text for r in answers]
    remaining = [r.headers["x-ratelimit-remaining"] for r in answers]
    assert remaining == ["4", "3", "2", "1", "0", "0", "0"]
    assert len({r.headers["x-ratelimit-reset"] for r in answers}) == 1
    for refused in answers[5:]:
        assert refused.json()["error"]["code"] == "RATE_LIMIT_EXCEEDED"
        assert int(refused.headers["retry-after"]) >= 1

    other = keys_cli(shared_env, tmp_path, "create", "--name", "bot", "--scope", "submit")
    assert other.returncode == 0, other.stderr
    key_id = next(w for w in created.stderr.split() if w.startswith("k_"))
    listed = keys_cli(shared_env, tmp_path, "list")
    assert key_id in listed.stdout and secret not in listed.stdout
    assert keys_cli(shared_env, tmp_path, "revoke", key_id).returncode == 0
    # Refused as revoked (401, before any limit) by both within their cache's lifetime,
    # while the other key still gets in through either.
    eventually(lambda: all(submit(api, secret).status_code == 401 for api in apis))
    assert all(submit(api, other.stdout.strip()).status_code == 201 for api in apis)
    assert "revoked" in submit(apis[0], secret).json()["error"]["message"]
