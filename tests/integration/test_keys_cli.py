"""`ai-pipeline keys create|list|revoke` against the configured store (here SQLite; the
distributed test drives them against Redis)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ai_pipeline.bootstrap import key_store
from ai_pipeline.cli import app
from ai_pipeline.domain.api_keys import hash_secret
from ai_pipeline.ports import ApiKey
from ai_pipeline.settings import Settings


@pytest.fixture
def env(tmp_path: Path, clean_env: None) -> dict[str, str]:
    url = f"sqlite:///{tmp_path / 'p.db'}"
    return {"AI_PIPELINE_STATE": url, "AI_PIPELINE_BUS": url}


def keys(env: dict[str, str], *args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, ["keys", *args], env=env)
    return result.exit_code, result.stdout, result.stderr


def stored(env: dict[str, str], secret: str) -> ApiKey | None:
    async def look() -> ApiKey | None:
        settings = Settings(state=env["AI_PIPELINE_STATE"], bus=env["AI_PIPELINE_BUS"])
        async with key_store(settings) as store:
            return await store.by_hash(hash_secret(secret))

    return asyncio.run(look())


def test_create_prints_the_secret_alone_on_stdout_and_stores_only_its_hash(
    env: dict[str, str], tmp_path: Path
) -> None:
    code, out, err = keys(env, "create", "--name", "ci", "--scope", "submit", "--scope", "read")
    assert code == 0, err
    secret = out.strip()
    assert secret.startswith("aip_") and "\n" not in secret
    key = stored(env, secret)
    assert key is not None and key.name == "ci"
    assert key.scopes == {"submit", "read"} and key.key_id in err
    assert secret.encode() not in (tmp_path / "p.db").read_bytes()


def test_list_shows_ids_scopes_and_limits_but_no_secret(env: dict[str, str]) -> None:
    _, secret, _ = keys(
        env, "create", "--name", "bot", "--scope", "submit", "--submit-per-hour", "0"
    )
    keys(env, "create", "--name", "dash", "--scope", "read", "--read-per-hour", "50")
    code, out, _ = keys(env, "list")
    assert code == 0
    assert "bot" in out and "unlimited" in out and "dash" in out and "50" in out
    assert "default" in out and "2 keys, 2 active" in out
    assert secret.strip() not in out


def test_revoke_marks_the_key_and_the_api_stays_closed(env: dict[str, str]) -> None:
    _, secret, err = keys(env, "create", "--name", "ci", "--scope", "submit")
    key = stored(env, secret.strip())
    assert key is not None
    code, out, err = keys(env, "revoke", key.key_id)
    assert code == 0 and key.key_id in out and "open" not in err
    revoked = stored(env, secret.strip())
    assert revoked is not None and revoked.revoked_at is not None
    assert "1 key, 0 active" in keys(env, "list")[1]


def test_revoking_an_unknown_key_fails(env: dict[str, str]) -> None:
    code, _, err = keys(env, "revoke", "k_12345678")
    assert code == 1 and "no active key" in err


def test_create_needs_a_known_scope(env: dict[str, str]) -> None:
    assert keys(env, "create", "--name", "x")[0] == 2
    assert keys(env, "create", "--name", "x", "--scope", "write")[0] == 2
