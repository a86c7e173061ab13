"""CLI: ``ai-pipeline redrive``: replay failed or dead-lettered requests once their cause is
fixed, straight against the configured bus and store (``redrive.py`` says how)."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn
from rich.table import Table

from ai_pipeline.settings import Settings
from ai_pipeline.text.patterns import linear

console = Console()
err = Console(stderr=True)
_AGO = linear(r"(\d+(?:\.\d+)?)\s*([smhd])")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}


def register(app: typer.Typer) -> None:
    app.command("redrive")(redrive)


def redrive(
    request: Annotated[
        list[str] | None,
        typer.Option("--request", help="A failed request's id (repeat for several)"),
    ] = None,
    failed_since: Annotated[
        str | None,
        typer.Option(
            "--failed-since",
            help="Every request failed since then: ISO time (2026-11-26T08:00:00Z, UTC when"
            " no offset is given) or an age (90m, 2h, 7d)",
        ),
    ] = None,
    dead_letters: Annotated[
        str | None,
        typer.Option("--dead-letters", help="A dead-letter topic, e.g. ticket-creation.dlq"),
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="List what would be replayed; change nothing")
    ] = False,
    raw: Annotated[bool, typer.Option("--json", help="Print raw JSON")] = False,
) -> None:
    """Replay failed or dead-lettered requests once their cause is fixed (a token, a
    permission, a renamed repository). Each request reopens at the step that failed and
    its input is published again; one filed before it failed is never filed twice."""
    chosen = [x for x in (request, failed_since, dead_letters) if x]
    if len(chosen) != 1:
        err.print("[red]give one of --request, --failed-since or --dead-letters[/red]")
        raise typer.Exit(2)
    since = _since(failed_since) if failed_since else None
    rows = asyncio.run(_run(request or [], since, dead_letters, dry_run))
    _show(rows, dry_run, raw)
    if request and any(r["action"] == "skipped" for r in rows):
        raise typer.Exit(1)


async def _run(
    request_ids: list[str], since: datetime | None, dead_topic: str | None, dry_run: bool
) -> list[dict[str, Any]]:
    from ai_pipeline import redrive as replay
    from ai_pipeline.bootstrap import bootstrap

    c = bootstrap(Settings())
    await c.bus.start()
    await c.store.start()
    try:
        if dead_topic is not None:
            try:
                plans = await replay.plan_dead_letters(c.bus, c.store, dead_topic)
            except ValueError as exc:
                err.print(f"[red]{exc}[/red]")
                raise typer.Exit(2) from None
        elif since is not None:
            plans = await replay.plan_failed_since(c.store, since)
        else:
            plans = await replay.plan_requests(c.store, request_ids)
        wanted = sum(1 for p in plans if p.skipped is None)
        if not dry_run and wanted:
            with Progress(
                TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), console=err
            ) as bar:
                task = bar.add_task("redriving", total=wanted)
                await replay.redrive(c.bus, c.store, plans, lambda n: bar.advance(task, n))
        return [p.row(dry_run) for p in plans]
    finally:
        await c.bus.close()
        await c.store.close()
        for db in c.databases:
            await db.close()


def _since(text: str) -> datetime:
    ago = _AGO.fullmatch(text.strip())
    if ago:
        return datetime.now(UTC) - timedelta(**{_UNITS[ago.group(2)]: float(ago.group(1))})
    try:
        when = datetime.fromisoformat(text.strip())
    except ValueError:
        err.print(f"[red]--failed-since takes an ISO time or an age like 2h, not {text!r}[/red]")
        raise typer.Exit(2) from None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def _show(rows: list[dict[str, Any]], dry_run: bool, raw: bool) -> None:
    if raw:
        typer.echo(json.dumps(rows, indent=2))
        return
    if rows:
        table = Table("request", "step", "topic", "action", "why not")
        for r in rows:
            table.add_row(r["request_id"], r["step"] or "", r["topic"], r["action"], r["reason"])
        console.print(table)
    going = sum(1 for r in rows if r["action"] != "skipped")
    skipped = len(rows) - going
    if not going:
        summary = "nothing to redrive"
    elif dry_run:
        summary = f"dry run: {going} would be redriven, nothing changed"
    else:
        summary = f"{going} redriven: follow them with `ai-pipeline requests --status active`"
    console.print(summary + (f" ({skipped} skipped)" if skipped else ""))
