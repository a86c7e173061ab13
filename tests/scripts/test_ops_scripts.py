"""The runbook's operations scripts, run for real against live stacks started here.

Embedded (one ``ai-pipeline serve`` on SQLite): backup → wipe → restore round trip, restore's
refusals, retention, S3 upload (moto_server), security checks. Distributed (API + one triage,
ticket-creation and tracker agent on real Kafka and Redis): emergency recovery (flush and
rebuild lose nothing), Redis maintenance (orphan index members), Redis backup round trip.
Rolling update against a ``kubectl`` stand-in that records its calls.
"""

from __future__ import annotations

import base64
import hashlib
import http.server
import io
import json
import os
import re
import shutil
import sqlite3
import subprocess
import sys
import tarfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import REPO, require_tool
from tests.factories import report_dict
from tests.fakes.github_server import FakeGitHub, run_fake_github
from tests.fleet import TOKEN, Fleet
from tests.fleet import all_requests as fleet_all_requests
from tests.service import ServiceProcess, free_port, wait_until_terminal
from tests.tls import tls_env

pytestmark = pytest.mark.e2e

SCRIPTS = REPO / "scripts"
OPS_SCRIPTS = [
    "automated-backup.sh",
    "restore-backup.sh",
    "emergency-recovery.sh",
    "redis-maintenance.sh",
    "security-check.sh",
    "rolling-update.sh",
]
SECRET = "ghp_" + "S3cr3tT0ken" * 3 + "abc"  # 36 characters after ghp_, like a real one


def script_env(base: dict[str, str] | None = None, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AI_PIPELINE_", "AWS_"))}
    env.update(base or {})
    env.update({"AI_PIPELINE_TARGET": "local", "NO_COLOR": "1", **extra})
    return env


def run(
    script: str, *args: str, env: dict[str, str], cwd: Path, timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", str(SCRIPTS / script), *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def output(result: subprocess.CompletedProcess[str]) -> str:
    return result.stdout + result.stderr


def all_requests(client: httpx.Client) -> list[dict[str, Any]]:
    return sorted(fleet_all_requests(client), key=lambda r: r["request_id"])


def archive_of(result: subprocess.CompletedProcess[str]) -> Path:
    assert result.returncode == 0, output(result)
    archive = Path(result.stdout.strip().splitlines()[-1])
    assert archive.is_file(), output(result)
    return archive


def members(archive: Path) -> dict[str, bytes]:
    with tarfile.open(archive, "r:gz") as tar:
        return {
            m.name: tar.extractfile(m).read()  # type: ignore[union-attr]
            for m in tar.getmembers()
            if m.isfile()
        }


def assert_manifest_matches(parts: dict[str, bytes]) -> dict[str, Any]:
    manifest: dict[str, Any] = json.loads(parts["manifest.json"])
    assert manifest["version"] and manifest["created_at"]
    listed = {p["name"]: p for p in manifest["parts"]}
    assert set(listed) == set(parts) - {"manifest.json"}
    for name, part in listed.items():
        assert hashlib.sha256(parts[name]).hexdigest() == part["sha256"], name
        assert len(parts[name]) == part["bytes"]
    return manifest


# ---------------------------------------------------------------------------------------------
# Embedded: backup and restore of the SQLite file


def test_backup_wipe_restore_gives_back_the_same_requests(tmp_path: Path) -> None:
    service = ServiceProcess(tmp_path, {"AI_PIPELINE_GITHUB_TOKEN": SECRET}).start()
    try:
        with service.client() as client:
            ids = [
                client.post("/api/v1/bug-reports", json=report_dict()).json()["request_id"]
                for _ in range(5)
            ]
            wait_until_terminal(client, ids)
            before = all_requests(client)
        env = script_env(service.env, AI_PIPELINE_URL=service.url)
        backup = run(
            "automated-backup.sh", "--out-dir", str(tmp_path / "backups"), env=env, cwd=tmp_path
        )
        archive = archive_of(backup)
        parts = members(archive)
        manifest = assert_manifest_matches(parts)
        assert {"sqlite/pipeline.db", "config/environment.json"} <= set(parts)
        assert manifest["state"] == "sqlite"
        config = json.loads(parts["config/environment.json"])
        assert config["AI_PIPELINE_GITHUB_TOKEN"]["value"] == "REDACTED"
        assert not any(SECRET.encode() in data for data in parts.values())

        refused = run("restore-backup.sh", str(archive), env=env, cwd=tmp_path)
        assert refused.returncode != 0
        assert "open in running process" in output(refused)
    finally:
        service.stop()

    for suffix in ("", "-wal", "-shm"):
        Path(f"{service.db}{suffix}").unlink(missing_ok=True)
    restored = run("restore-backup.sh", str(archive), env=env, cwd=tmp_path)
    assert restored.returncode == 0, output(restored)
    assert "restored" in restored.stdout and "pipeline.db" in restored.stdout

    again = ServiceProcess(tmp_path).start()
    try:
        with again.client() as client:
            assert all_requests(client) == before
            assert sorted(r["request_id"] for r in before) == sorted(ids)
    finally:
        again.stop()


def _sqlite_file(path: Path, rows: int = 3) -> Path:
    db = sqlite3.connect(path)
    with db:
        db.execute("create table t (n integer)")
        db.executemany("insert into t values (?)", [(n,) for n in range(rows)])
    db.close()
    return path


def test_restore_refuses_an_archive_whose_part_does_not_match_its_checksum(
    tmp_path: Path,
) -> None:
    db = _sqlite_file(tmp_path / "state.db")
    env = script_env(AI_PIPELINE_STATE=f"sqlite:///{db}", AI_PIPELINE_BUS=f"sqlite:///{db}")
    archive = archive_of(run("automated-backup.sh", "--out-dir", "out", env=env, cwd=tmp_path))
    parts = members(archive)
    parts["sqlite/state.db"] = parts["sqlite/state.db"][:-1] + b"\x01"
    tampered = tmp_path / "tampered.tar.gz"
    with tarfile.open(tampered, "w:gz") as tar:
        for name, data in parts.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    db.unlink()

    result = run("restore-backup.sh", str(tampered), env=env, cwd=tmp_path)
    assert result.returncode != 0
    assert "CHECKSUM MISMATCH sqlite/state.db" in output(result)
    assert not db.exists()  # nothing touched
    good = run("restore-backup.sh", str(archive), env=env, cwd=tmp_path)
    assert good.returncode == 0, output(good)
    assert sqlite3.connect(db).execute("select count(*) from t").fetchone() == (3,)


def test_retention_keeps_the_newest_archives(tmp_path: Path) -> None:
    db = _sqlite_file(tmp_path / "state.db")
    env = script_env(AI_PIPELINE_STATE=f"sqlite:///{db}", AI_PIPELINE_BUS=f"sqlite:///{db}")
    made = [
        archive_of(
            run("automated-backup.sh", "--out-dir", "out", "--keep", "2", env=env, cwd=tmp_path)
        )
        for _ in range(3)
    ]
    assert sorted((tmp_path / "out").glob("*.tar.gz")) == sorted(made[1:])


@pytest.fixture
def moto_server(tmp_path: Path) -> Iterator[str]:
    moto = require_tool("moto_server", Path(sys.executable).parent / "moto_server")
    port = free_port()
    with (tmp_path / "moto.log").open("wb") as log:
        proc = subprocess.Popen(
            [moto, "-H", "127.0.0.1", "-p", str(port)], stdout=log, stderr=subprocess.STDOUT
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                httpx.get(url, timeout=2)
                break
            except httpx.HTTPError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise RuntimeError((tmp_path / "moto.log").read_text()) from None
                time.sleep(0.2)
        yield url
    finally:
        proc.terminate()
        proc.wait(20)


def test_backup_uploads_to_s3_compatible_storage(tmp_path: Path, moto_server: str) -> None:
    import boto3

    aws = {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }
    s3 = boto3.client(
        "s3",
        endpoint_url=moto_server,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    s3.create_bucket(Bucket="backups")
    db = _sqlite_file(tmp_path / "state.db")
    env = script_env(
        AI_PIPELINE_STATE=f"sqlite:///{db}",
        AI_PIPELINE_BUS=f"sqlite:///{db}",
        AI_PIPELINE_S3_ENDPOINT_URL=moto_server,
        **aws,
    )
    result = run(
        "automated-backup.sh",
        "--out-dir",
        "out",
        "--s3-url",
        "s3://backups/nightly",
        env=env,
        cwd=tmp_path,
    )
    archive = archive_of(result)
    stored = s3.get_object(Bucket="backups", Key=f"nightly/{archive.name}")["Body"].read()
    assert stored == archive.read_bytes()

    missing = run(
        "automated-backup.sh",
        "--out-dir",
        "out",
        "--s3-url",
        "s3://no-such-bucket",
        env=env,
        cwd=tmp_path,
    )
    assert missing.returncode != 0
    assert "upload" in output(missing) and "failed" in output(missing)


# ---------------------------------------------------------------------------------------------
# Embedded: security checks


@pytest.fixture(scope="module")
def embedded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServiceProcess]:
    workdir = tmp_path_factory.mktemp("security")
    service = ServiceProcess(workdir, {"AI_PIPELINE_GITHUB_TOKEN": SECRET}).start()
    try:
        with service.client() as client:
            ids = [
                client.post("/api/v1/bug-reports", json=report_dict()).json()["request_id"]
                for _ in range(3)
            ]
            wait_until_terminal(client, ids)
        yield service
    finally:
        service.stop()


def security_check(
    service: ServiceProcess, cwd: Path, *args: str, **env: str
) -> subprocess.CompletedProcess[str]:
    base = script_env(service.env, AI_PIPELINE_URL=service.url)
    base.update(env)
    return run(
        "security-check.sh", "--log", str(service.log_path), "--no-audit", *args, env=base, cwd=cwd
    )


def test_security_check_passes_on_a_healthy_service(
    embedded: ServiceProcess, tmp_path: Path
) -> None:
    dotenv = tmp_path / ".env"
    dotenv.write_text(f"AI_PIPELINE_GITHUB_TOKEN={SECRET}\n")
    dotenv.chmod(0o600)
    result = security_check(embedded, tmp_path)
    assert result.returncode == 0, output(result)
    assert "malformed JSON: HTTP 400 INVALID_REQUEST" in result.stdout
    assert "unknown request: HTTP 404 REQUEST_NOT_FOUND" in result.stdout
    assert f"no secret in {embedded.log_path}" in result.stdout
    assert ".env is mode 600" in result.stdout
    # A TLS Kafka elsewhere and a Redis with a password are fine too.
    remote_ok = security_check(
        embedded,
        tmp_path,
        AI_PIPELINE_BUS="kafka://kafka-1.internal:9093",
        AI_PIPELINE_KAFKA_CONFIG='{"security.protocol": "SASL_SSL"}',
        AI_PIPELINE_STATE="redis://:pw@redis.internal:6379/0",
    )
    assert remote_ok.returncode == 0, output(remote_ok)


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        ("token-in-log", "secrets in"),
        ("world-readable-env", "readable beyond its owner"),
        ("redact-none", "AI_PIPELINE_REDACT is 'none'"),
        ("remote-redis-without-password", "has no password"),
        ("remote-kafka-plaintext", "over PLAINTEXT"),
    ],
)
def test_security_check_fails_on_each_finding(
    embedded: ServiceProcess, tmp_path: Path, case: str, expected: str
) -> None:
    args: list[str] = []
    env: dict[str, str] = {}
    if case == "token-in-log":
        leaky = tmp_path / "leaky.log"
        leaky.write_text(f'{{"event": "calling github", "token": "{SECRET}"}}\n')
        args = ["--log", str(leaky)]
    elif case == "world-readable-env":
        dotenv = tmp_path / ".env"
        dotenv.write_text("AI_PIPELINE_LLM_API_KEY=sk-abcdefghijklmnopqrstuvwxyz\n")
        dotenv.chmod(0o644)
    elif case == "redact-none":
        env = {"AI_PIPELINE_REDACT": "none"}
    elif case == "remote-redis-without-password":
        env = {"AI_PIPELINE_STATE": "redis://10.20.30.40:6379/0"}
    else:
        env = {"AI_PIPELINE_BUS": "kafka://kafka-1.internal:9092"}
    result = security_check(embedded, tmp_path, *args, **env)
    assert result.returncode != 0, output(result)
    assert expected in output(result)
    assert SECRET not in output(result)  # findings are shown masked


@pytest.mark.parametrize(("days", "passes"), [(365, True), (5, False)])
def test_security_check_reads_the_expiry_of_the_served_certificate(
    tmp_path: Path, days: int, passes: bool
) -> None:
    env = tls_env(tmp_path, days)
    with ServiceProcess(tmp_path, env) as service:
        # curl trusts the self-signed certificate as an operator's CA bundle would.
        result = security_check(service, tmp_path, CURL_CA_BUNDLE=env["AI_PIPELINE_TLS_CERT_FILE"])
    assert "malformed JSON: HTTP 400 INVALID_REQUEST" in result.stdout  # reached over HTTPS
    if passes:
        assert result.returncode == 0, output(result)
        assert "valid until" in result.stdout and "(more than 14 days)" in result.stdout
    else:
        assert result.returncode == 1, output(result)
        assert "expires within 14 days" in result.stderr


class _LeakyHandler(http.server.BaseHTTPRequestHandler):
    def _leak(self) -> None:
        body = b'Traceback (most recent call last):\n  File "app.py", line 3\nValueError\n'
        self.send_response(500)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = _leak

    def log_message(self, *args: Any) -> None:
        pass


def test_security_check_fails_when_the_api_shows_a_stack_trace(
    embedded: ServiceProcess, tmp_path: Path
) -> None:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _LeakyHandler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        result = security_check(
            embedded, tmp_path, AI_PIPELINE_URL=f"http://127.0.0.1:{server.server_port}"
        )
    finally:
        server.shutdown()
        server.server_close()
    assert result.returncode != 0
    assert "the answer carries a stack trace" in output(result)


# ---------------------------------------------------------------------------------------------
# Distributed: Kafka + Redis, one process per agent

REPORTS = 30


@pytest.fixture(scope="module")
def github() -> Iterator[FakeGitHub]:
    with run_fake_github(token=TOKEN) as gh:
        yield gh


@pytest.fixture(scope="module")
def fleet(
    tmp_path_factory: pytest.TempPathFactory,
    kafka_broker: Any,
    redis_server: Any,
    github: FakeGitHub,
) -> Iterator[Fleet]:
    fleet = Fleet(
        tmp_path_factory.mktemp("fleet"), kafka_broker, redis_server, github, triage_agents=1
    ).start()
    try:
        fleet.submit([report_dict() for _ in range(REPORTS)])
        fleet.wait_all_done(REPORTS)
        yield fleet
    finally:
        fleet.stop()


def fleet_env(fleet: Fleet, **extra: str) -> dict[str, str]:
    return script_env(fleet.api.env, **{"AI_PIPELINE_URL": fleet.api.url, **extra})


def prefix_keys(redis_server: Any, prefix: str) -> list[bytes]:
    keys: list[bytes] = []
    cursor = b"0"
    while True:
        cursor, batch = redis_server.command("SCAN", cursor, "MATCH", f"{prefix}*", "COUNT", 1000)
        keys.extend(batch)
        if cursor == b"0":
            return keys


def test_emergency_recovery_flushes_rebuilds_and_loses_nothing(
    fleet: Fleet, redis_server: Any
) -> None:
    before = fleet.all_requests()
    assert len(before) == REPORTS
    result = run("emergency-recovery.sh", "--flush", env=fleet_env(fleet), cwd=fleet.workdir)
    assert result.returncode == 0, output(result)
    assert "removed" in result.stdout and "keys under prefix" in result.stdout
    assert f"rebuilt {REPORTS} requests" in result.stdout
    assert f"after: {REPORTS} requests (before: {REPORTS})" in result.stdout
    assert fleet.all_requests() == before


def test_emergency_recovery_fails_when_fewer_requests_show_than_expected(
    fleet: Fleet, redis_server: Any
) -> None:
    result = run(
        "emergency-recovery.sh",
        "--expect",
        str(REPORTS + 5),
        env=fleet_env(fleet),
        cwd=fleet.workdir,
    )
    assert result.returncode != 0
    assert f"after: {REPORTS} requests, fewer than the {REPORTS + 5}" in output(result)


def test_emergency_recovery_touches_nothing_when_the_api_does_not_answer(
    fleet: Fleet, redis_server: Any
) -> None:
    keys = len(prefix_keys(redis_server, fleet.prefix))
    env = fleet_env(fleet, AI_PIPELINE_URL=f"http://127.0.0.1:{free_port()}")
    result = run("emergency-recovery.sh", "--flush", env=env, cwd=fleet.workdir)
    assert result.returncode != 0
    assert "nothing touched" in output(result)
    assert len(prefix_keys(redis_server, fleet.prefix)) == keys
    assert fleet.count("all") == REPORTS


def test_redis_maintenance_reports_and_fixes_orphan_index_members(
    fleet: Fleet, redis_server: Any
) -> None:
    env = fleet_env(fleet)
    clean = run("redis-maintenance.sh", env=env, cwd=fleet.workdir)
    assert clean.returncode == 0, output(clean)
    assert f"request                      {REPORTS}" in clean.stdout
    assert "used_memory" not in clean.stderr

    index = f"{fleet.prefix}index:all"
    redis_server.command("ZADD", index, "1700000000000", "ghost-request")
    found = run("redis-maintenance.sh", env=env, cwd=fleet.workdir)
    assert found.returncode != 0
    assert "orphan ghost-request in index:all" in found.stdout
    assert "1 orphan ids" in found.stderr

    fixed = run("redis-maintenance.sh", "--fix", env=env, cwd=fleet.workdir)
    assert fixed.returncode == 0, output(fixed)
    assert "removed 1 orphan index entries" in fixed.stdout
    assert redis_server.command("ZSCORE", index, "ghost-request") is None
    assert fleet.count("all") == REPORTS
    assert run("redis-maintenance.sh", env=env, cwd=fleet.workdir).returncode == 0

    over = run("redis-maintenance.sh", "--max-memory-mb", "0.01", env=env, cwd=fleet.workdir)
    assert over.returncode != 0
    assert "above the limit" in over.stderr


def test_redis_backup_round_trip(fleet: Fleet, redis_server: Any, tmp_path: Path) -> None:
    before = fleet.all_requests()
    env = fleet_env(fleet)
    archive = archive_of(
        run("automated-backup.sh", "--out-dir", str(tmp_path), env=env, cwd=fleet.workdir)
    )
    parts = members(archive)
    manifest = assert_manifest_matches(parts)
    assert manifest["state"] == "redis"
    assert "redis/keys.jsonl" in parts
    if shutil.which("redis-cli"):
        assert parts["redis/dump.rdb"].startswith(b"REDIS")
    assert not any(TOKEN.encode() in data for data in parts.values())

    keys = prefix_keys(redis_server, fleet.prefix)
    assert len(keys) >= REPORTS
    redis_server.command("UNLINK", *keys)  # Redis lost
    assert fleet.count("all") == 0

    restored = run("restore-backup.sh", str(archive), env=env, cwd=fleet.workdir)
    assert restored.returncode == 0, output(restored)
    dumped = parts["redis/keys.jsonl"].count(b"\n")
    assert dumped >= REPORTS
    # The running service may write keys of its own before the restore (daily counters, the
    # agents' heartbeats and their expiry index): those are kept, everything else restored.
    put_back, kept = restore_counts(restored.stdout)
    assert put_back + kept == dumped and kept <= 3, output(restored)
    assert "state rebuild" in restored.stdout
    assert fleet.all_requests() == before
    # A second restore over live keys keeps them: an old snapshot never overwrites newer state.
    again = run("restore-backup.sh", str(archive), env=env, cwd=fleet.workdir)
    assert again.returncode == 0, output(again)
    assert restore_counts(again.stdout) == (0, dumped), output(again)
    assert fleet.all_requests() == before


def restore_counts(stdout: str) -> tuple[int, int]:
    """(keys restored, existing keys kept) from restore-backup.sh's Redis line."""
    found = re.search(r"restored (\d+) Redis keys(?:[^\n]*?, (\d+) existing keys kept)?", stdout)
    assert found, stdout
    return int(found[1]), int(found[2] or 0)


# ---------------------------------------------------------------------------------------------
# Rolling update against a kubectl stand-in

KUBECTL = """#!/usr/bin/env bash
# Records each call; fails `rollout status` of $KUBECTL_FAIL_STATUS once; `exec` (the health
# check) answers unhealthy when $KUBECTL_UNHEALTHY is set.
if [[ " $* " == *" exec "* ]]; then
  echo "exec health" >>"$KUBECTL_LOG"
  if [[ -n "${KUBECTL_UNHEALTHY:-}" ]]; then echo '{"status": "unhealthy"}'; exit 1; fi
  echo '{"status": "healthy"}'
  exit 0
fi
echo "$*" >>"$KUBECTL_LOG"
if [[ "$*" == *"rollout status deployment/${KUBECTL_FAIL_STATUS:-none} "* \
      && ! -e "$KUBECTL_LOG.failed" ]]; then
  touch "$KUBECTL_LOG.failed"
  echo "error: deployment \\"$KUBECTL_FAIL_STATUS\\" exceeded its progress deadline" >&2
  exit 1
fi
"""


def rolling_update(tmp_path: Path, **env: str) -> tuple[subprocess.CompletedProcess[str], str]:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    kubectl = bin_dir / "kubectl"
    kubectl.write_text(KUBECTL)
    kubectl.chmod(0o755)
    log = tmp_path / "kubectl.log"
    full = script_env(
        PATH=f"{bin_dir}:{os.environ['PATH']}",
        KUBECTL_LOG=str(log),
        AI_PIPELINE_TARGET="kubectl",
        AI_PIPELINE_HEALTH_WAIT_SECONDS="0",
        **env,
    )
    result = run(
        "rolling-update.sh",
        "--image",
        "registry.example/ai-pipeline:1.2.3",
        "--deployments",
        "ai-pipeline triage-agent ticket-creation-agent",
        "--health-tries",
        "2",
        "--timeout",
        "30s",
        env=full,
        cwd=tmp_path,
    )
    return result, log.read_text() if log.exists() else ""


def test_rolling_update_updates_each_deployment_in_turn(tmp_path: Path) -> None:
    result, calls = rolling_update(tmp_path)
    assert result.returncode == 0, output(result)
    ns = "-n ai-pipeline"
    assert calls.splitlines() == [
        line
        for d in ("ai-pipeline", "triage-agent", "ticket-creation-agent")
        for line in (
            f"{ns} set image deployment/{d} {d}=registry.example/ai-pipeline:1.2.3",
            f"{ns} rollout status deployment/{d} --timeout=30s",
            "exec health",
        )
    ]


def test_rolling_update_rolls_back_when_a_rollout_fails(tmp_path: Path) -> None:
    result, calls = rolling_update(tmp_path, KUBECTL_FAIL_STATUS="triage-agent")
    assert result.returncode != 0
    lines = calls.splitlines()
    assert "-n ai-pipeline rollout undo deployment/triage-agent" in lines
    assert "-n ai-pipeline rollout undo deployment/ai-pipeline" in lines
    assert lines.index("-n ai-pipeline rollout undo deployment/triage-agent") < lines.index(
        "-n ai-pipeline rollout undo deployment/ai-pipeline"
    )
    assert not any("ticket-creation-agent" in line for line in lines)


def test_rolling_update_rolls_back_when_the_health_check_fails(tmp_path: Path) -> None:
    result, calls = rolling_update(tmp_path, KUBECTL_UNHEALTHY="1")
    assert result.returncode != 0
    assert "not healthy; rolling back" in output(result)
    assert "-n ai-pipeline rollout undo deployment/ai-pipeline" in calls.splitlines()
    assert "triage-agent" not in calls


def test_rolling_update_locally_has_nothing_to_roll_or_restarts_on_command(
    tmp_path: Path,
) -> None:
    env = script_env(AI_PIPELINE_HEALTH_WAIT_SECONDS="0")
    nothing = run("rolling-update.sh", env=env, cwd=tmp_path)
    assert nothing.returncode == 0, output(nothing)
    assert "nothing to roll" in nothing.stdout
    dead = script_env(
        AI_PIPELINE_HEALTH_WAIT_SECONDS="0", AI_PIPELINE_URL=f"http://127.0.0.1:{free_port()}"
    )
    restart = run(
        "rolling-update.sh",
        "--command",
        "touch restarted",
        "--health-tries",
        "1",
        env=dead,
        cwd=tmp_path,
    )
    assert restart.returncode != 0
    assert (tmp_path / "restarted").exists()
    assert "not healthy" in output(restart)


# ---------------------------------------------------------------------------------------------


# ---------------------------------------------------------------------------------------------
# Against a kubectl stand-in that runs what is exec'd "in the pod" here, on the real stack

POD_KUBECTL = """#!/usr/bin/env bash
{ printf '%q ' "$@"; echo; } >>"$KUBECTL_LOG"
if [[ " $* " == *" exec "* ]]; then
  while [[ "$1" != "--" ]]; do shift; done
  shift
  if [[ "$1" == python ]]; then shift; exec "$POD_PYTHON" "$@"; fi
  exec "$@"
fi
"""


def pod_env(fleet: Fleet, tmp_path: Path) -> tuple[dict[str, str], Path]:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "kubectl").write_text(POD_KUBECTL)
    (bin_dir / "kubectl").chmod(0o755)
    log = tmp_path / "kubectl.log"
    env = fleet_env(
        fleet,
        PATH=f"{bin_dir}:{os.environ['PATH']}",
        KUBECTL_LOG=str(log),
        POD_PYTHON=sys.executable,
        AI_PIPELINE_TARGET="kubectl",
    )
    return env, log


def test_redis_maintenance_on_kubectl_scans_from_inside_the_pod(
    fleet: Fleet, redis_server: Any, tmp_path: Path
) -> None:
    env, log = pod_env(fleet, tmp_path)
    index = f"{fleet.prefix}index:all"
    redis_server.command("ZADD", index, "1700000000000", "pod-ghost")
    try:
        found = run("redis-maintenance.sh", env=env, cwd=tmp_path)
    finally:
        redis_server.command("ZREM", index, "pod-ghost")
    assert found.returncode != 0
    assert "orphan pod-ghost in index:all" in found.stdout
    # The scan itself (its code, handed to python in the pod) went through kubectl exec.
    (scan,) = [c for c in log.read_text().splitlines() if "r.scan_iter" in c]
    assert scan.startswith("-n ai-pipeline exec deploy/ai-pipeline -- python -c")


def test_backup_on_kubectl_dumps_redis_from_inside_the_pod(fleet: Fleet, tmp_path: Path) -> None:
    env, log = pod_env(fleet, tmp_path)
    result = run("automated-backup.sh", "--out-dir", str(tmp_path / "out"), env=env, cwd=tmp_path)
    assert result.returncode == 0, output(result)
    parts = members(archive_of(result))
    assert_manifest_matches(parts)
    keys = [json.loads(line) for line in parts["redis/keys.jsonl"].decode().splitlines()]
    requests = {k["key"] for k in keys if b"request:" in base64.b64decode(k["key"])}
    assert len(requests) == REPORTS
    assert "redis/dump.rdb" not in parts  # a snapshot only with --target local
    assert "exec deploy/ai-pipeline -- python -c" in log.read_text()


# ---------------------------------------------------------------------------------------------
# Emergency recovery against a kubectl stand-in: everything runs in the pod, KEDA is paused

EMERGENCY_KUBECTL = """#!/usr/bin/env bash
# Records each call. In the pod: the requests count ($KUBECTL_COUNTS: one per call, the last
# repeats), settings, the flush and the rebuild; the tracker deployment has 1 replica.
{ printf '%q ' "$@"; echo; } >>"$KUBECTL_LOG"  # one line per call, newlines escaped
if [[ " $* " == *" exec "* ]]; then
  last="${*: -1}"
  case "$last" in
    /api/v1/requests*)
      read -r -a counts <"$KUBECTL_COUNTS"
      echo "{\\"pagination\\": {\\"total\\": ${counts[0]}}}"
      [[ ${#counts[@]} -gt 1 ]] && echo "${counts[*]:1}" >"$KUBECTL_COUNTS"
      ;;
    state) echo "redis://redis.redis.svc:6379/0" ;;
    redis_key_prefix) echo "" ;;
    rebuild) echo "rebuilt 5 requests from 20 status events" ;;
    --yes) echo "removed 40 keys under prefix '' (kept 9 the log cannot give back)" ;;
    *) echo "unexpected call" >&2; exit 1 ;;
  esac
  exit 0
fi
if [[ "$*" == *"get deployment github-api-agent"* ]]; then echo 1; fi
"""


def emergency_on_kubectl(
    tmp_path: Path, counts: str
) -> tuple[subprocess.CompletedProcess[str], list[str]]:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "kubectl").write_text(EMERGENCY_KUBECTL)
    (bin_dir / "kubectl").chmod(0o755)
    (tmp_path / "counts").write_text(counts)
    log = tmp_path / "kubectl.log"
    env = script_env(
        PATH=f"{bin_dir}:{os.environ['PATH']}",
        KUBECTL_LOG=str(log),
        KUBECTL_COUNTS=str(tmp_path / "counts"),
        AI_PIPELINE_TARGET="kubectl",
    )
    result = run("emergency-recovery.sh", "--flush", env=env, cwd=tmp_path)
    return result, log.read_text().splitlines()


def step(calls: list[str], *words: str) -> int:
    """Index of the first call containing every word."""
    return next(i for i, call in enumerate(calls) if all(w in call for w in words))


def test_emergency_recovery_on_kubectl_pauses_keda_and_works_inside_the_pod(
    tmp_path: Path,
) -> None:
    result, calls = emergency_on_kubectl(tmp_path, "5 5")
    assert result.returncode == 0, output(result)
    order = [
        step(calls, "exec deploy/ai-pipeline", "/api/v1/requests"),
        step(calls, "annotate scaledobject github-api-agent", "paused-replicas=0"),
        step(calls, "scale deployment github-api-agent --replicas=0"),
        step(calls, "exec deploy/ai-pipeline", "ai-pipeline state flush --yes"),  # in the pod
        step(calls, "exec deploy/ai-pipeline", "ai-pipeline state rebuild"),
        step(calls, "annotate scaledobject github-api-agent", "paused-replicas-"),
        step(calls, "scale deployment github-api-agent --replicas=1"),
    ]
    assert order == sorted(order)
    assert "nothing lost" in output(result)


def test_emergency_recovery_on_kubectl_fails_on_a_loss_and_still_brings_agents_back(
    tmp_path: Path,
) -> None:
    result, calls = emergency_on_kubectl(tmp_path, "5 3")
    assert result.returncode == 1
    assert "fewer than the 5 before" in output(result)
    assert any("scale deployment github-api-agent --replicas=1" in c for c in calls)
