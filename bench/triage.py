"""Local triage speed: reports/s through the real triage agent against a 10,000-report index.

The agent does what it does in the service: one sentence embedding of the report, the fused
duplicate search over every indexed report, the models and rules, routing, then it adds the
report to the index. The index is filled with real reports from ``../shared/data`` (cycled
to the requested size), embedded in batches beforehand, which is also how the service
seeds it at start. Model load time is measured from a cold ``LocalTriageEngine.load``.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from rich.progress import Progress

from ai_pipeline.adapters.bus.sqlite import SqliteBus
from ai_pipeline.adapters.sqlite_db import SqliteDatabase
from ai_pipeline.adapters.state.sqlite import SqliteStateStore
from ai_pipeline.agents.triage import TriageAgent
from ai_pipeline.domain.events import BugReportSubmitted
from ai_pipeline.domain.models import BugReport
from ai_pipeline.observability.metrics import Metrics
from ai_pipeline.triage.duplicate_eval import load_seamonkey
from ai_pipeline.triage.embeddings import Embedder, report_text
from ai_pipeline.triage.local import LocalTriageEngine
from ai_pipeline.triage.tasks import TASKS, get_task

DATA_DIR = Path(os.environ.get("AI_PIPELINE_DATA_DIR", "../shared/data"))


def _texts(data_dir: Path) -> list[tuple[str, str]]:
    """(title, body) of every report in the data folder, first line as the title."""
    seen: dict[str, tuple[str, str]] = {}
    for name in TASKS:
        for example in get_task(name).examples(data_dir):
            title, _, body = example.text.partition("\n")
            seen.setdefault(example.text, (title[:200] or "untitled", body))
    for report in load_seamonkey(data_dir).reports:
        seen.setdefault(report.text, (report.title[:200] or "untitled", report.description))
    return list(seen.values())


def _report(i: int, title: str, body: str) -> BugReport:
    return BugReport(
        id=f"bench-{i}",
        title=title,
        description=body[:20_000] or title,
        reporter="bench@example.com",
    )


Pair = tuple[str, str]


def _embed_all(pairs: list[Pair]) -> dict[Pair, Any]:
    unique = list(dict.fromkeys(pairs))
    with Progress() as progress:
        bar = progress.add_task("embedding the index", total=len(unique))
        vectors = Embedder(threads=os.cpu_count() or 1).embed(
            [report_text(f"{t}\n{b}") for t, b in unique],
            progress=lambda n: progress.advance(bar, n),
        )
    return dict(zip(unique, vectors, strict=True))


async def _run(
    indexed: list[Pair], asked: list[Pair], vector_of: dict[Pair, Any], threads: int
) -> dict[str, Any]:
    started = time.perf_counter()
    engine = LocalTriageEngine.load()
    embedder = Embedder(threads=threads)
    load_seconds = time.perf_counter() - started
    index = engine.new_duplicate_index()
    for i, (title, body) in enumerate(indexed):
        index.add(f"seed-{i}", None, title, f"{title}\n{body}", embedding=vector_of[(title, body)])
    with tempfile.TemporaryDirectory() as tmp:
        db = SqliteDatabase(Path(tmp) / "bench.db")
        bus = SqliteBus(db, {"bug-reports": 1})
        store = SqliteStateStore(db, bus, same_file_bus=bus)
        await bus.start()
        await store.start()
        agent = TriageAgent(engine, index, store, Metrics(), embedder=embedder)
        events = [
            BugReportSubmitted(request_id=f"req-{i}", report=_report(i, t, b))
            for i, (t, b) in enumerate(asked)
        ]
        await agent.handle(events[0])  # first-call warm-up (onnxruntime allocations)
        per_report = []
        began = time.perf_counter()
        for event in events[1:]:
            t0 = time.perf_counter()
            await agent.handle(event)
            per_report.append((time.perf_counter() - t0) * 1000)
        elapsed = time.perf_counter() - began
        await db.close()
    ordered = sorted(per_report)
    return {
        "index_size": len(indexed),
        "queries": len(per_report),
        "embedding_threads": threads,
        "reports_per_s": len(per_report) / elapsed,
        "ms_p50": statistics.median(ordered),
        "ms_p95": ordered[int(0.95 * (len(ordered) - 1))],
        "model_load_s": load_seconds,
    }


def run(index_size: int = 10_000, queries: int = 500) -> dict[str, Any]:
    """Both thread settings: one (one agent per core, the scaling default) and all cores."""
    if not DATA_DIR.is_dir():
        print(f"triage bench skipped: {DATA_DIR} is absent")
        return {"skipped": f"{DATA_DIR} is absent"}
    texts = _texts(DATA_DIR)
    pool = [texts[i % len(texts)] for i in range(index_size + queries)]
    indexed, asked = pool[:index_size], pool[index_size:]
    vector_of = _embed_all(indexed)
    results = {}
    for threads in sorted({1, os.cpu_count() or 1}):
        figures = asyncio.run(_run(indexed, asked, vector_of, threads))
        print(
            f"triage, {threads} thread(s), {index_size} indexed: "
            f"{figures['reports_per_s']:.1f} reports/s, p50 {figures['ms_p50']:.1f} ms, "
            f"p95 {figures['ms_p95']:.1f} ms, model load {figures['model_load_s']:.2f} s"
        )
        results[f"threads_{threads}"] = figures
    return results
