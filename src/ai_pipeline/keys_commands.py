"""CLI: ``ai-pipeline keys create|list|revoke``, straight against the configured store
(``AI_PIPELINE_STATE``): no running service needed, and every API replica sees the change
within ``AI_PIPELINE_AUTH_CACHE_SECONDS``."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, TypeVar

import typer
from rich.console import Console
from rich.table import Table

from ai_pipeline.domain import api_keys
from ai_pipeline.domain.api_keys import encode_scopes, hash_secret, new_key_id, new_secret
from ai_pipeline.ports import ApiKey, KeyStore
from ai_pipeline.settings import Settings

T = TypeVar("T")
console = Console()
err = Console(stderr=True)
keys_app = typer.Typer(help="API keys: create (the secret is shown once), list, revoke.")


class Scope(StrEnum):
    SUBMIT = api_keys.SUBMIT
    READ = api_keys.READ
    ADMIN = api_keys.ADMIN


def register(app: typer.Typer) -> None:
    app.add_typer(keys_app, name="keys")


def _with_keys(use: Callable[[KeyStore], Awaitable[T]]) -> T:
    from ai_pipeline.bootstrap import key_store

    async def run() -> T:
        async with key_store(Settings()) as keys:
            return await use(keys)

    return asyncio.run(run())


PerHour = Annotated[
    int | None,
    typer.Option(min=0, help="This key's hourly limit (default: the service's); 0: unlimited"),
]


@keys_app.command("create")
def create(
    name: Annotated[str, typer.Option("--name", help="Who or what uses the key")],
    scopes: Annotated[
        list[Scope], typer.Option("--scope", help="Repeat per scope: submit, read, admin")
    ],
    submit_per_hour: PerHour = None,
    read_per_hour: PerHour = None,
) -> None:
    """Create a key and print its secret: the only time it is shown (only a hash is kept)."""
    secret = new_secret()
    key = ApiKey(
        key_id=new_key_id(),
        name=name,
        scopes=frozenset(s.value for s in scopes),
        created_at=time.time(),
        submit_per_hour=submit_per_hour,
        read_per_hour=read_per_hour,
    )
    _with_keys(lambda keys: keys.add(key, hash_secret(secret)))
    err.print(f"created {key.key_id} ({name}; {encode_scopes(key.scopes)}); the secret follows,")
    err.print("shown this once: send it as `X-API-Key: …` or `Authorization: Bearer …`")
    typer.echo(secret)  # alone on stdout, so `SECRET=$(ai-pipeline keys create …)` works


@keys_app.command("list")
def list_keys() -> None:
    """Every key, revoked ones included (never a secret: none is stored)."""
    keys = _with_keys(lambda store: store.list())
    table = Table("id", "name", "scopes", "submit/h", "read/h", "created", "revoked")
    for key in keys:
        table.add_row(
            key.key_id,
            key.name,
            encode_scopes(key.scopes),
            _limit(key.submit_per_hour),
            _limit(key.read_per_hour),
            _when(key.created_at),
            _when(key.revoked_at),
        )
    console.print(table)
    active = sum(1 for k in keys if k.revoked_at is None)
    plural = "" if len(keys) == 1 else "s"
    summary = f"{len(keys)} key{plural}, {active} active"
    console.print(summary + ("" if active else ": the API is open to anyone"))


@keys_app.command("revoke")
def revoke(key_id: Annotated[str, typer.Argument(help="The key's id, e.g. k_3f9a1c2b")]) -> None:
    """Revoke a key; refused everywhere within AI_PIPELINE_AUTH_CACHE_SECONDS. Exit 1 when
    no active key has that id."""

    async def revoke_it(keys: KeyStore) -> bool:
        return await keys.revoke(key_id)

    if not _with_keys(revoke_it):
        err.print(f"[red]no active key {key_id!r}[/red] (see `ai-pipeline keys list`)")
        raise typer.Exit(1)
    console.print(f"revoked {key_id}")


def _limit(value: int | None) -> str:
    return "default" if value is None else ("unlimited" if value == 0 else str(value))


def _when(at: float | None) -> str:
    return "" if at is None else datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%d %H:%M:%SZ")
