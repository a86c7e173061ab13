"""Local triage speed: reports/s through the real triage agent against a 10,000-report index.

The agent does what it does in the service: one sentence embedding of the report, the fused
duplicate search over every indexed report, the models and rules, routing, then it adds the
report to the index and stores the embedding. The index is filled with real reports from
``../shared/data`` (cycled to the requested size), embedded beforehand, as the service seeds
it from stored embeddings at start. Three layouts of the same 2 cores:

- one agent process, one onnxruntime thread (the scaling unit);
- one agent process, one thread per core;
- one agent process per core, one thread each, side by side (how agents scale).

Model load time is measured from a cold ``LocalTriageEngine.load`` with its embedder.
Alongside, the quality figures the shipped model recorded at training (``ai-pipeline eval``
recomputes them).
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import statistics
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
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
from ai_pipeline.triage.artifact import load_artifact
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
    embedder = Embedder(threads=threads)
    engine = LocalTriageEngine.load(embedder=embedder)
    embedder.warm_up()  # the onnxruntime session is part of loading the model
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
        "samples": {"ms": per_report},
    }


def _one_process(
    indexed: list[Pair], asked: list[Pair], vector_of: dict[Pair, Any], threads: int
) -> dict[str, Any]:
    return asyncio.run(_run(indexed, asked, vector_of, threads))


def run(index_size: int = 10_000, queries: int = 500) -> dict[str, Any]:
    if not DATA_DIR.is_dir():
        print(f"triage bench skipped: {DATA_DIR} is absent")
        return {"skipped": f"{DATA_DIR} is absent"}
    cores = os.cpu_count() or 1
    texts = _texts(DATA_DIR)
    pool = [texts[i % len(texts)] for i in range(index_size + queries * cores)]
    indexed, asked = pool[:index_size], pool[index_size:]
    vector_of = _embed_all(indexed)
    results: dict[str, Any] = {"quality": quality()}
    for threads in sorted({1, cores}):
        figures = _one_process(indexed, asked[:queries], vector_of, threads)
        results[f"one_process_{threads}_threads"] = figures
        _print(f"1 process, {threads} thread(s)", figures)
    if cores > 1:
        # Each process gets its own slice of reports and its own copy of the index.
        # Spawned, not forked: a fork of this process (onnxruntime's and the agent's worker
        # threads running) inherits their locks held and hangs in the first report.
        spawn = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(cores, mp_context=spawn) as workers:
            slices = [asked[i * queries : (i + 1) * queries] for i in range(cores)]
            futures = [
                workers.submit(_one_process, indexed, piece, vector_of, 1) for piece in slices
            ]
            runs = [future.result() for future in futures]
        combined = {
            "processes": cores,
            "reports_per_s": sum(r["reports_per_s"] for r in runs),
            "ms_p50": statistics.median(x for r in runs for x in r["samples"]["ms"]),
            "model_load_s": max(r["model_load_s"] for r in runs),
            "per_process": [{k: v for k, v in r.items() if k != "samples"} for r in runs],
        }
        results[f"processes_{cores}"] = combined
        print(
            f"triage, {cores} processes side by side: {combined['reports_per_s']:.1f} reports/s"
            f" in all, p50 {combined['ms_p50']:.1f} ms"
        )
    return results


def _print(name: str, figures: dict[str, Any]) -> None:
    print(
        f"triage, {name}, {figures['index_size']} indexed: "
        f"{figures['reports_per_s']:.1f} reports/s, p50 {figures['ms_p50']:.1f} ms, "
        f"p95 {figures['ms_p95']:.1f} ms, model load {figures['model_load_s']:.2f} s"
    )


def quality() -> dict[str, Any]:
    """The shipped model's recorded figures (``ai-pipeline eval`` recomputes them): the NLBSE
    protocol, calibration and what each field decides at the default targets."""
    artifact = load_artifact()
    type_scores = artifact.classifier("type").scores
    cv = type_scores["cross_validation"]
    security = artifact.security.scores if artifact.security else {}
    duplicates = artifact.duplicates.scores
    return {
        "type_per_repository_cv": cv["per_repository"],
        "type_generic_cv": cv["generic"],
        "type_calibration": type_scores["calibration"],
        "levels": {
            name: {
                "explicit_signals": artifact.classifier(name).scores.get("explicit_signals", {}),
                "team_model_calibration": artifact.classifier(name).scores.get("calibration", {}),
            }
            for name in ("priority", "severity")
        },
        "duplicates_recall_at": duplicates["recall_at"],
        "duplicates_queries": duplicates["n_queries"],
        "duplicates_calibration": duplicates["calibration"],
        "duplicates_at_default": duplicates["at_default_threshold"],
        "duplicates_before": duplicates["at_similarity_0.65"],
        "duplicates_held_out": duplicates.get("held_out_project", {}),
        "security_bands": security.get("leave_one_project_out", []),
        "security_pooled": security.get("pooled", {}),
        "security_ece": security.get("ece_held_out"),
        "security_ordinary": security.get("ordinary_reports", {}),
        "security_targets": security.get("targets", {}),
    }
