"""Duplicate search measured as the service meets it: each report only sees older ones.

Reports are replayed in creation order into an empty :class:`DuplicateIndex`; before a
report is added, it queries the index, so the later report of each labelled pair searches
among every report created before it (labelled or not). A query is a hit at ``k`` when one
of its labelled duplicates is among the ``k`` best. The same replay gives every report's
best match among older ones: whether that match is a labelled duplicate is what the
``duplicate_of`` confidence is calibrated on, and what a threshold would flag.

Labelled pairs are incomplete (a report filed twice the same day is often closed as
INVALID, not linked), so precision against them is a lower bound; trackers also record
which reports they closed as duplicates (SeaMonkey's ``DUPLICATE``, Hadoop's
``Duplicate``), an upper bound on a flagged report being right.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from ai_pipeline.triage.artifact import VectorizerSpec
from ai_pipeline.triage.duplicates import DuplicateIndex
from ai_pipeline.triage.embeddings import FloatMatrix
from ai_pipeline.triage.linear import TfidfFeatures
from ai_pipeline.triage.tasks import (
    HADOOP_REPORTS,
    SEAMONKEY_PAIRS,
    SEAMONKEY_REPORTS,
    Report,
    read_csv,
)

RECALL_AT = (1, 5, 10)


@dataclass(frozen=True)
class ChronologicalPairs:
    """Reports oldest first, for each later report of a pair its older duplicates, and the
    reports the tracker closed as duplicates (of anything, labelled or not)."""

    reports: list[Report]
    queries: dict[str, frozenset[str]]
    resolved_duplicate: frozenset[str] = frozenset()
    priorities: tuple[str, ...] = ()  # the tracker's priority of each report, when known

    def linked(self, report_id: str, other_id: str) -> bool:
        return other_id in self.queries.get(report_id, ())


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
    resolved = frozenset(
        row["Issue id"].strip() for row in rows if row["Resolution"] == "DUPLICATE"
    )
    return ChronologicalPairs(reports, dict(sorted(queries.items())), resolved)


def load_hadoop(data_dir: Path) -> ChronologicalPairs:
    """Hadoop's Jira reports in creation order. Its duplicate pairs are held out of the data
    folder: only which reports were closed as ``Duplicate`` is known."""
    rows = sorted(
        read_csv(data_dir / HADOOP_REPORTS),
        key=lambda row: (datetime.strptime(row["Created"], "%d/%b/%y %H:%M"), row["Issue id"]),
    )
    reports = [Report(row["Issue id"].strip(), row["Summary"], row["Description"]) for row in rows]
    resolved = frozenset(
        row["Issue id"].strip() for row in rows if row["Resolution"] == "Duplicate"
    )
    return ChronologicalPairs(reports, {}, resolved, tuple(row["Priority"] for row in rows))


@dataclass(frozen=True)
class Replay:
    """Per query: recall at each depth. Per report that had an older one to match: the best
    match's similarity, whether it is a labelled duplicate, whether the report is a query,
    and whether the tracker closed the report as a duplicate."""

    recall: dict[int, float]
    n_queries: int
    top_score: npt.NDArray[np.float64]
    top_correct: npt.NDArray[np.bool_]
    is_query: npt.NDArray[np.bool_]
    resolved_duplicate: npt.NDArray[np.bool_]

    def flagged(self, threshold: float) -> dict[str, Any]:
        """What ``duplicate_of`` at ``threshold`` (a similarity) would have flagged."""
        flagged = self.top_score >= threshold
        n, queries = int(flagged.sum()), int((flagged & self.is_query).sum())
        return {
            "flagged": n,
            "flag_rate": _ratio(n, len(self.top_score)),
            "precision_labelled_pairs": _ratio(int((flagged & self.top_correct).sum()), n),
            "precision_among_queries": _ratio(
                int((flagged & self.top_correct & self.is_query).sum()), queries
            ),
            "queries_flagged": queries,
            "share_closed_as_duplicate": _ratio(int((flagged & self.resolved_duplicate).sum()), n),
            "closed_as_duplicate_flagged": _ratio(
                int((flagged & self.resolved_duplicate).sum()), int(self.resolved_duplicate.sum())
            ),
        }


def _ratio(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


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
    top_score, top_correct, is_query, resolved = [], [], [], []
    for row, report in enumerate(pairs.reports):
        embedding = None if embeddings is None else embeddings[row]
        vector = index.vector(report.title, report.text)
        found = index.search(vector, depth, embedding=embedding) if len(index) else []
        gold = pairs.queries.get(report.id)
        if gold is not None:
            ranked = [candidate.bug_report_id for candidate in found]
            for k in recall_at:
                hits[k] += bool(gold.intersection(ranked[:k]))
        if found:
            top_score.append(found[0].similarity)
            top_correct.append(pairs.linked(report.id, found[0].bug_report_id))
            is_query.append(gold is not None)
            resolved.append(report.id in pairs.resolved_duplicate)
        index.add(report.id, None, report.title, report.text, vector=vector, embedding=embedding)
    n = max(len(pairs.queries), 1)
    return Replay(
        recall={k: round(hits[k] / n, 4) for k in recall_at},
        n_queries=len(pairs.queries),
        top_score=np.array(top_score, dtype=np.float64),
        top_correct=np.array(top_correct, dtype=np.bool_),
        is_query=np.array(is_query, dtype=np.bool_),
        resolved_duplicate=np.array(resolved, dtype=np.bool_),
    )
