"""API keys in the service's SQLite file, beside the request state."""

from __future__ import annotations

import sqlite3
import time

from ai_pipeline.adapters.sqlite_db import SqliteDatabase
from ai_pipeline.domain.api_keys import decode_scopes, encode_scopes
from ai_pipeline.ports import ApiKey

SCHEMA = """
CREATE TABLE IF NOT EXISTS api_keys (
    key_id TEXT PRIMARY KEY,
    secret_hash TEXT NOT NULL UNIQUE,
    name TEXT NOT NULL,
    scopes TEXT NOT NULL,
    created_at REAL NOT NULL,
    revoked_at REAL,
    submit_per_hour INTEGER,
    read_per_hour INTEGER
);
"""
_COLUMNS = "key_id, name, scopes, created_at, revoked_at, submit_per_hour, read_per_hour"


class SqliteKeyStore:
    """The ``KeyStore`` on SQLite. Its database is started by whoever owns it (the state
    store in the service; ``start`` here for the command line)."""

    def __init__(self, db: SqliteDatabase):
        self.db = db
        db.add_schema(SCHEMA)

    async def start(self) -> None:
        await self.db.start()

    async def close(self) -> None:
        await self.db.close()

    async def add(self, key: ApiKey, secret_hash: str) -> None:
        def op(conn: sqlite3.Connection) -> None:
            conn.execute(
                f"INSERT INTO api_keys (secret_hash, {_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    secret_hash,
                    key.key_id,
                    key.name,
                    encode_scopes(key.scopes),
                    key.created_at,
                    key.revoked_at,
                    key.submit_per_hour,
                    key.read_per_hour,
                ),
            )

        await self.db.write(op)

    async def by_hash(self, secret_hash: str) -> ApiKey | None:
        rows = self.db.read(
            f"SELECT {_COLUMNS} FROM api_keys WHERE secret_hash = ?", (secret_hash,)
        )
        return _key(rows[0]) if rows else None

    async def list(self) -> list[ApiKey]:
        rows = self.db.read(f"SELECT {_COLUMNS} FROM api_keys ORDER BY created_at, key_id")
        return [_key(row) for row in rows]

    async def revoke(self, key_id: str) -> bool:
        def op(conn: sqlite3.Connection) -> bool:
            cursor = conn.execute(
                "UPDATE api_keys SET revoked_at = ? WHERE key_id = ? AND revoked_at IS NULL",
                (time.time(), key_id),
            )
            return cursor.rowcount == 1

        return await self.db.write(op)

    async def any_keys(self) -> bool:
        return bool(self.db.read("SELECT 1 FROM api_keys LIMIT 1"))


def _key(row: sqlite3.Row) -> ApiKey:
    return ApiKey(
        key_id=row["key_id"],
        name=row["name"],
        scopes=decode_scopes(row["scopes"]),
        created_at=row["created_at"],
        revoked_at=row["revoked_at"],
        submit_per_hour=row["submit_per_hour"],
        read_per_hour=row["read_per_hour"],
    )
