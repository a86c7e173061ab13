"""CLI: ``ai-pipeline reviews export``: the maintainers' corrections from the review queue,
as a JSONL export ``ai-pipeline train --from`` reads (format: ``triage.export``)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from ai_pipeline.settings import Settings

err = Console(stderr=True)
reviews_app = typer.Typer(help="The review queue's corrections, kept as labelled examples.")


def register(app: typer.Typer) -> None:
    app.add_typer(reviews_app, name="reviews")


@reviews_app.command("export")
def export(
    out: Annotated[
        Path | None, typer.Option("--out", help="JSONL file to write (default: standard output)")
    ] = None,
) -> None:
    """Write every stored correction, one JSON object a line, oldest first. Then:
    `ai-pipeline train --from FILE --out DIR` refits triage with them."""
    from ai_pipeline.bootstrap import bootstrap

    async def read() -> list[dict[str, Any]]:
        c = bootstrap(Settings())
        await c.store.start()
        try:
            return await c.store.review_examples()
        finally:
            await c.store.close()
            for db in c.databases:
                await db.close()

    examples = asyncio.run(read())
    lines = "".join(json.dumps(e, ensure_ascii=False) + "\n" for e in examples)
    if out is None:
        typer.echo(lines, nl=False)
    else:
        out.write_text(lines, encoding="utf-8")
    err.print(f"{len(examples)} corrected examples exported" + (f" to {out}" if out else ""))
