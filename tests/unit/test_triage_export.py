"""A team's export: CSV and JSONL read alike, values mapped or reported, never guessed."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ai_pipeline.triage.export import ExportError, load_export

ROWS = [
    {
        "id": "1",
        "title": "Crash on save",
        "body": "boom",
        "type": "Defect",
        "priority": "P1",
        "security": "0",
        "created_at": "2024-01-01",
    },
    {
        "id": "2",
        "title": "Crash when saving",
        "body": "boom again",
        "type": "bug",
        "priority": "urgent",
        "security": "yes",
        "duplicate_of": "1",
        "created_at": "2024-02-01",
    },
    {
        "id": "3",
        "title": "Dark mode",
        "body": "",
        "type": "Enhancement",
        "priority": "someday",
        "severity": "S2",
    },
]


def write_csv(path: Path) -> Path:
    import csv

    with path.open("w", newline="", encoding="utf-8") as handle:
        fields = sorted({k for row in ROWS for k in row})
        writer = csv.DictWriter(handle, fieldnames=fields)
        writer.writeheader()
        writer.writerows(ROWS)
    return path


def write_jsonl(path: Path) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in ROWS), encoding="utf-8")
    return path


@pytest.mark.parametrize("writer", [write_csv, write_jsonl])
def test_both_formats_give_the_same_examples(tmp_path: Path, writer: object) -> None:
    suffix = ".csv" if writer is write_csv else ".jsonl"
    export = load_export(writer(tmp_path / f"export{suffix}"))  # type: ignore[operator]
    assert export.rows == 3
    assert [e.label for e in export.examples["type"]] == ["bug", "bug", "feature"]
    assert [e.label for e in export.examples["priority"]] == ["high", "critical"]
    assert export.unmapped["priority"] == {"someday": 1}
    assert [e.label for e in export.examples["security"]] == ["other", "security"]
    assert [e.label for e in export.examples["severity"]] == ["major"]
    assert export.duplicates == {"2": frozenset({"1"})}
    assert export.tasks() == []  # far too few examples to fit anything


def test_tasks_need_two_classes_with_ten_examples(tmp_path: Path) -> None:
    rows = [{"title": f"t{i}", "type": "bug" if i % 2 else "feature"} for i in range(20)]
    rows += [{"title": "only one", "priority": "low"}] * 30
    path = tmp_path / "e.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    assert load_export(path).tasks() == ["type"]


def test_errors_name_the_record(tmp_path: Path) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"title": "ok"}\n{"body": "no title"}\n', encoding="utf-8")
    with pytest.raises(ExportError, match="record 2: no title"):
        load_export(bad)
    broken = tmp_path / "broken.jsonl"
    broken.write_text('{"title": "ok"}\n{nope\n', encoding="utf-8")
    with pytest.raises(ExportError, match="line 2: not JSON"):
        load_export(broken)
    headerless = tmp_path / "h.csv"
    headerless.write_text("name,body\nx,y\n", encoding="utf-8")
    with pytest.raises(ExportError, match="no 'title' column"):
        load_export(headerless)
