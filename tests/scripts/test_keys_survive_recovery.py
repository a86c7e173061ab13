"""API keys outlive the runbook's emergency flush, and come back with a backup's restore: a
service that requires keys (AI_PIPELINE_AUTH=required, as deployed) on a real Redis, its
keys made with the CLI, driven through the scripts as an operator runs them."""

from __future__ import annotations

import base64
import json
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.factories import report_dict
from tests.scripts.test_ops_scripts import archive_of, members, output, run, script_env
from tests.service import ServiceProcess, wait_until_terminal

pytestmark = [pytest.mark.e2e, pytest.mark.services]

REPORTS = 3


class Keyed:
    """The service, its key prefix, and an admin key made through the CLI."""

    def __init__(self, service: ServiceProcess, prefix: str):
        self.service = service
        self.prefix = prefix
        self.secret = self.cli("keys", "create", "--name", "ops", "--scope", "admin").strip()

    def cli(self, *args: str) -> str:
        done = subprocess.run(
            [sys.executable, "-m", "ai_pipeline.cli", *args],
            env=self.service.env,
            cwd=self.service.workdir,
            capture_output=True,
            text=True,
            timeout=120,
            check=True,
        )
        return done.stdout

    def client(self, keyed: bool = True) -> httpx.Client:
        headers = {"X-API-Key": self.secret} if keyed else {}
        return httpx.Client(base_url=self.service.url, headers=headers, timeout=30)

    def env(self) -> dict[str, str]:
        return script_env(
            self.service.env, AI_PIPELINE_URL=self.service.url, AI_PIPELINE_API_KEY=self.secret
        )

    def total(self) -> int:
        with self.client() as client:
            page = client.get("/api/v1/requests", params={"status": "all", "limit": 1})
        assert page.status_code == 200, page.text
        return int(page.json()["pagination"]["total"])


@pytest.fixture
def keyed(tmp_path: Path, redis_server: Any) -> Iterator[Keyed]:
    prefix = f"keys-{uuid.uuid4().hex[:10]}:"
    env = {
        "AI_PIPELINE_STATE": redis_server.url,
        "AI_PIPELINE_REDIS_KEY_PREFIX": prefix,
        "AI_PIPELINE_LOCAL_TRACKER_DB": f"sqlite:///{tmp_path / 'tracker.db'}",
        "AI_PIPELINE_AUTH": "required",
        "AI_PIPELINE_AUTH_CACHE_SECONDS": "0",
        "AI_PIPELINE_LOG_LEVEL": "WARNING",
    }
    with ServiceProcess(tmp_path, env) as service:
        keyed = Keyed(service, prefix)
        with keyed.client() as client:
            ids = [
                client.post("/api/v1/bug-reports", json=report_dict()).json()["request_id"]
                for _ in range(REPORTS)
            ]
            wait_until_terminal(client, ids)
        yield keyed


def assert_closed_to_strangers_and_open_to_the_key(keyed: Keyed) -> None:
    with keyed.client(keyed=False) as stranger:
        refused = stranger.get("/api/v1/requests")
    assert refused.status_code == 401, refused.text  # keys exist: closed, neither open nor 503
    with keyed.client() as client:
        assert client.get("/api/v1/requests").status_code == 200
    assert "1 key, 1 active" in keyed.cli("keys", "list")


def test_the_emergency_flush_keeps_the_api_keys(keyed: Keyed, redis_server: Any) -> None:
    result = run(
        "emergency-recovery.sh", "--flush", "--no-scale", env=keyed.env(), cwd=keyed.service.workdir
    )
    assert result.returncode == 0, output(result)
    # apikey:, apikey-hash:, apikeys, apikeys:active, and each report's id lookup
    assert f"kept {4 + REPORTS} the log cannot give back" in result.stdout
    assert f"after: {REPORTS} requests (before: {REPORTS}): nothing lost" in result.stdout
    assert_closed_to_strangers_and_open_to_the_key(keyed)


def test_a_backup_gives_back_the_keys_and_the_log_the_requests(
    keyed: Keyed, redis_server: Any, tmp_path: Path
) -> None:
    env, cwd = keyed.env(), keyed.service.workdir
    backup = run("automated-backup.sh", "--out-dir", str(tmp_path / "out"), env=env, cwd=cwd)
    archive = archive_of(backup)
    assert "(4 of them API-key entries)" in backup.stderr, output(backup)
    dumped = [json.loads(line) for line in members(archive)["redis/keys.jsonl"].splitlines()]
    names = {base64.b64decode(k["key"]).decode() for k in dumped}
    assert f"{keyed.prefix}apikeys" in names

    # Redis lost (a failover to an empty replica): the API shuts, it does not open.
    _, everything = redis_server.command("SCAN", "0", "MATCH", f"{keyed.prefix}*", "COUNT", 100_000)
    redis_server.command("DEL", *everything)
    with keyed.client() as client:
        assert client.get("/api/v1/requests").status_code == 503

    only = run("restore-backup.sh", str(archive), "--only-keys", env=env, cwd=cwd)
    assert only.returncode == 0, output(only)
    assert "restored 4 API-key entries" in only.stdout
    assert_closed_to_strangers_and_open_to_the_key(keyed)
    assert keyed.total() == 0  # nothing but the keys came back

    # The requests come back from the log, as the runbook goes on.
    rebuilt = run("emergency-recovery.sh", "--no-scale", "--expect", str(REPORTS), env=env, cwd=cwd)
    assert rebuilt.returncode == 0, output(rebuilt)
    assert keyed.total() == REPORTS
    assert_closed_to_strangers_and_open_to_the_key(keyed)
