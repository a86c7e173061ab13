"""CLI: ``ai-pipeline follow-up``: the follow-up rules of unanswered questions, run once
(``--dry-run`` lists what they would do and changes nothing)."""

from __future__ import annotations

import asyncio
import json
from dataclasses import asdict
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from ai_pipeline.domain.follow_up import Action, ActionKind
from ai_pipeline.settings import Settings

console = Console()


def register(app: typer.Typer) -> None:
    app.command("follow-up")(follow_up)


def follow_up(
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="List what would be done; change nothing")
    ] = False,
    raw: Annotated[bool, typer.Option("--json", help="Print raw JSON")] = False,
) -> None:
    """Remind reporters once of unanswered questions (AI_PIPELINE_NEEDS_INFO_REMIND_DAYS)
    and, when AI_PIPELINE_NEEDS_INFO_CLOSE_DAYS is set, close as not_planned what the
    rules allow (the last word ours, no maintainer since, no exempt label). The service
    runs this every AI_PIPELINE_FOLLOW_UP_INTERVAL_SECONDS."""
    actions = asyncio.run(_run(dry_run))
    if raw:
        typer.echo(json.dumps([asdict(a) for a in actions], indent=2))
        return
    table = Table("action", "request", "tracker", "issue", "reason", title="Follow-up")
    for a in actions:
        table.add_row(a.kind.value, a.request_id, a.tracker, f"#{a.issue_number}", a.reason)
    console.print(table)
    done = sum(1 for a in actions if a.kind is not ActionKind.KEEP)
    verb = "would be taken (dry run: nothing changed)" if dry_run else "taken"
    console.print(f"{done} actions {verb}")


async def _run(dry_run: bool) -> list[Action]:
    from ai_pipeline.bootstrap import started

    async with started(Settings()) as c:
        return await c.loop.follow_ups.run(dry_run=dry_run)
