"""A team's own labelled issues, read from a CSV or JSONL export, for ``ai-pipeline train``.

One issue per CSV row or JSON line. Only ``title`` is required; every other field trains
the task it names when present (a row without ``priority`` simply does not count for
priority):

============== ==========================================================================
``id``         the issue's id or number (needed by ``duplicate_of``)
``title``      the issue title (required)
``body``       the description
``type``       bug | feature | question (also: defect, enhancement, feature request,
               support, help wanted, …)
``priority``   low | medium | high | critical (also P0–P4, trivial, minor, major, blocker,
               urgent)
``severity``   minor | moderate | major | blocker (also trivial, normal, critical, S1–S4)
``security``   true/false, yes/no or 1/0
``repo``       repository or project: per-repository scores, stratified splits
``created_at`` ISO 8601; duplicate evaluation queries each issue among older ones
``duplicate_of`` the ``id`` of the issue this one duplicates
============== ==========================================================================

Values are matched case-insensitively; a value that maps to nothing is reported, not
guessed.
"""

from __future__ import annotations

import csv
import json
import sys
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ai_pipeline.triage.duplicate_eval import ChronologicalPairs
from ai_pipeline.triage.features import join_fields
from ai_pipeline.triage.tasks import Example, Report

csv.field_size_limit(sys.maxsize)

VALUE_MAPS: dict[str, dict[str, str]] = {
    "type": {
        **dict.fromkeys(("bug", "defect", "bug report", "regression", "crash", "error"), "bug"),
        **dict.fromkeys(
            ("feature", "enhancement", "feature request", "improvement", "new feature", "task"),
            "feature",
        ),
        **dict.fromkeys(
            ("question", "support", "help wanted", "help", "usage", "docs question"), "question"
        ),
    },
    "priority": {
        **dict.fromkeys(("low", "trivial", "minor", "p3", "p4", "lowest"), "low"),
        **dict.fromkeys(("medium", "normal", "major", "p2", "moderate"), "medium"),
        **dict.fromkeys(("high", "p1", "important", "highest"), "high"),
        **dict.fromkeys(("critical", "blocker", "p0", "urgent"), "critical"),
    },
    "severity": {
        **dict.fromkeys(("minor", "trivial", "low", "s4", "cosmetic"), "minor"),
        **dict.fromkeys(("moderate", "normal", "medium", "s3"), "moderate"),
        **dict.fromkeys(("major", "high", "critical", "s2"), "major"),
        **dict.fromkeys(("blocker", "s1", "showstopper"), "blocker"),
    },
    "security": {
        **dict.fromkeys(("1", "true", "yes", "y", "security"), "security"),
        **dict.fromkeys(("0", "false", "no", "n", "other"), "other"),
    },
}
LABELLED_FIELDS = tuple(VALUE_MAPS)


class ExportError(ValueError):
    """The export cannot be used (missing file, wrong format, no title column)."""


@dataclass
class UserExport:
    """Examples per task, duplicate-search data, and what was skipped and why."""

    source: str
    examples: dict[str, list[Example]] = field(default_factory=dict)
    reports: list[Report] = field(default_factory=list)
    created_at: dict[str, str] = field(default_factory=dict)
    duplicates: dict[str, frozenset[str]] = field(default_factory=dict)
    unmapped: dict[str, Counter[str]] = field(default_factory=dict)
    rows: int = 0

    def chronological_pairs(self) -> ChronologicalPairs:
        """Reports oldest first (``created_at``, then file order) and, per report, its
        labelled duplicates among older ones: the replay ``duplicate_eval`` measures."""
        order = sorted(
            range(len(self.reports)),
            key=lambda i: (self.created_at.get(self.reports[i].id, ""), i),
        )
        reports = [self.reports[i] for i in order]
        position = {report.id: i for i, report in enumerate(reports)}
        queries = {}
        for report_id, canon in self.duplicates.items():
            older = frozenset(c for c in canon if position[c] < position[report_id])
            if older:
                queries[report_id] = older
        return ChronologicalPairs(reports, dict(sorted(queries.items())))

    def tasks(self) -> list[str]:
        """Tasks with enough examples to fit: two classes, at least 10 examples each."""
        usable = []
        for name, examples in sorted(self.examples.items()):
            counts = Counter(e.label for e in examples)
            if len(counts) >= 2 and min(counts.values()) >= 10:
                usable.append(name)
        return usable


def load_export(path: Path) -> UserExport:
    if not path.is_file():
        raise ExportError(f"{path} does not exist")
    rows = _read_jsonl(path) if path.suffix.lower() in (".jsonl", ".ndjson") else _read_csv(path)
    export = UserExport(source=path.name)
    pairs: dict[str, set[str]] = {}
    for number, row in enumerate(rows, start=1):
        export.rows += 1
        title = _text(row.get("title"))
        if not title:
            raise ExportError(f"{path.name}, record {number}: no title")
        text = join_fields([title, _text(row.get("body"))])
        group = _text(row.get("repo")) or "default"
        for name, mapping in VALUE_MAPS.items():
            raw = row.get(name)
            if _text(raw) == "":
                continue
            value = mapping.get(_text(raw).lower())
            if value is None:
                export.unmapped.setdefault(name, Counter())[_text(raw)] += 1
                continue
            export.examples.setdefault(name, []).append(Example(text, value, group))
        issue_id = _text(row.get("id"))
        if issue_id:
            export.reports.append(Report(issue_id, title, _text(row.get("body"))))
            export.created_at[issue_id] = _text(row.get("created_at"))
            canonical = _text(row.get("duplicate_of"))
            if canonical:
                pairs.setdefault(issue_id, set()).add(canonical)
    known = {r.id for r in export.reports}
    export.duplicates = {
        query: frozenset(c for c in canon if c in known and c != query)
        for query, canon in pairs.items()
        if any(c in known and c != query for c in canon)
    }
    return export


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value).strip()


def _read_csv(path: Path) -> Iterator[dict[str, Any]]:
    with path.open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        if reader.fieldnames is None or "title" not in reader.fieldnames:
            raise ExportError(f"{path.name}: the header has no 'title' column")
        yield from reader


def _read_jsonl(path: Path) -> Iterator[dict[str, Any]]:
    with path.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as error:
                raise ExportError(f"{path.name}, line {number}: not JSON ({error.msg})") from None
            if not isinstance(record, dict):
                raise ExportError(f"{path.name}, line {number}: not a JSON object")
            yield record
