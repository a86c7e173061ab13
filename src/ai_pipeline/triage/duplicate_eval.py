"""Duplicate search measured as the service meets it: each report only sees older ones.

Reports are replayed in creation order into an empty :class:`DuplicateIndex`; before a
report is added, it queries the index, so the later report of each labelled pair searches
among every report created before it (labelled or not). A query is a hit at ``k`` when one
of its labelled duplicates is among the ``k`` best. The same replay yields each report's
best score against older ones: what a threshold on ``duplicate_of`` would flag.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from ai_pipeline.triage.artifact import VectorizerSpec
from ai_pipeline.triage.duplicates import DuplicateIndex
from ai_pipeline.triage.embeddings import FloatMatrix
from ai_pipeline.triage.linear import TfidfFeatures
from ai_pipeline.triage.tasks import SEAMONKEY_PAIRS, SEAMONKEY_REPORTS, Report, read_csv

RECALL_AT = (1, 5, 10)
THRESHOLD_GRID = tuple(round(0.50 + 0.05 * i, 2) for i in range(9))  # 0.50 … 0.90
TARGET_PRECISION = 0.8
MIN_FLAGGED = 5


@dataclass(frozen=True)
class ChronologicalPairs:
    """Reports oldest first, and for each later report of a pair its older duplicates."""

    reports: list[Report]
    queries: dict[str, frozenset[str]]


def load_seamonkey(data_dir: Path) -> ChronologicalPairs:
    rows = sorted(
        read_csv(data_dir / SEAMONKEY_REPORTS),
        key=lambda row: (row["Created"], int(row["Issue id"])),
    )
    reports = [Report(row["Issue id"].strip(), row["Summary"], row["Description"]) for row in rows]
    position = {report.id: i for i, report in enumerate(reports)}
    linked: dict[str, set[str]] = {}
    for row in read_csv(data_dir / SEAMONKEY_PAIRS):
        first = row["Issue id"].strip()
        # "Duplicate id" may list several ids: "1284028, 1648584"; links go both ways.
        for other in (part.strip() for part in row["Duplicate id"].split(",")):
            if first in position and other in position and other != first:
                linked.setdefault(first, set()).add(other)
                linked.setdefault(other, set()).add(first)
    queries = {}
    for report_id, others in linked.items():
        older = frozenset(o for o in others if position[o] < position[report_id])
        if older:
            queries[report_id] = older
    return ChronologicalPairs(reports, dict(sorted(queries.items())))


@dataclass(frozen=True)
class Replay:
    recall: dict[int, float]
    n_queries: int
    query_top_score: npt.NDArray[np.float64]  # per query
    query_top_correct: npt.NDArray[np.bool_]  # per query
    all_top_score: npt.NDArray[np.float64]  # per report with at least one older report


def replay(
    pairs: ChronologicalPairs,
    lexical: VectorizerSpec,
    embeddings: FloatMatrix | None,
    recall_at: Sequence[int] = RECALL_AT,
    title_weight: float = 0.5,
) -> Replay:
    """Query each report against the older ones, then add it (as the triage agent does)."""
    index = DuplicateIndex(TfidfFeatures(lexical), title_weight=title_weight)
    depth = max(recall_at)
    hits = dict.fromkeys(recall_at, 0)
    query_scores, query_correct, all_scores = [], [], []
    for row, report in enumerate(pairs.reports):
        embedding = None if embeddings is None else embeddings[row]
        vector = index.vector(report.title, report.text)
        found = index.search(vector, depth, embedding=embedding) if len(index) else []
        if found:
            all_scores.append(found[0].similarity)
        gold = pairs.queries.get(report.id)
        if gold is not None:
            ranked = [candidate.bug_report_id for candidate in found]
            for k in recall_at:
                hits[k] += bool(gold.intersection(ranked[:k]))
            query_scores.append(found[0].similarity if found else 0.0)
            query_correct.append(bool(ranked) and ranked[0] in gold)
        index.add(report.id, None, report.title, report.text, vector=vector, embedding=embedding)
    n = max(len(pairs.queries), 1)
    return Replay(
        recall={k: round(hits[k] / n, 4) for k in recall_at},
        n_queries=len(pairs.queries),
        query_top_score=np.array(query_scores),
        query_top_correct=np.array(query_correct, dtype=np.bool_),
        all_top_score=np.array(all_scores),
    )


def choose_threshold(run: Replay) -> tuple[float, dict[str, Any]]:
    """The lowest ``duplicate_of`` threshold whose top matches are right ``TARGET_PRECISION``
    of the time among labelled queries (at least ``MIN_FLAGGED`` of them flagged).

    Precision, not F-score: a wrong ``duplicate_of`` buries a new problem under an old one,
    and SeaMonkey's labels are far from complete, so the share of *all* reports flagged is
    reported alongside (F0.5 would pick 0.55 here and flag half of all reports).
    """
    chosen = THRESHOLD_GRID[-1]
    for threshold in THRESHOLD_GRID:
        flagged = run.query_top_score >= threshold
        right = flagged & run.query_top_correct
        if flagged.sum() >= MIN_FLAGGED and right.sum() >= TARGET_PRECISION * flagged.sum():
            chosen = threshold
            break
    flagged = run.query_top_score >= chosen
    correct = flagged & run.query_top_correct
    return chosen, {
        "threshold_precision": round(float(correct.sum() / max(flagged.sum(), 1)), 4),
        "threshold_recall": round(float(correct.sum() / max(run.n_queries, 1)), 4),
        "flag_rate_all_reports": round(float((run.all_top_score >= chosen).mean()), 4),
    }
