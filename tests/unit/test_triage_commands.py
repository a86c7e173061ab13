"""The train/eval sub-commands: registration, missing data dir, eval on the shipped model."""

from __future__ import annotations

from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from ai_pipeline.triage.commands import USAGE_ERROR_EXIT_CODE, register
from tests.conftest import DATA, require_data


def app() -> typer.Typer:
    built = typer.Typer()
    register(built)
    return built


def test_both_commands_are_registered() -> None:
    result = CliRunner().invoke(app(), ["--help"])
    assert result.exit_code == 0
    assert "train" in result.output
    assert "eval" in result.output


@pytest.mark.parametrize("command", [["train"], ["eval", "--task", "type"]])
def test_missing_data_dir_exits_2(command: list[str], tmp_path: Path) -> None:
    missing = tmp_path / "nowhere"
    result = CliRunner().invoke(app(), [*command, "--data-dir", str(missing)])
    assert result.exit_code == USAGE_ERROR_EXIT_CODE == 2
    assert "not found" in result.output


def test_unknown_task_is_rejected() -> None:
    result = CliRunner().invoke(app(), ["eval", "--task", "colour"])
    assert result.exit_code != 0


@pytest.mark.data
@pytest.mark.parametrize("task", ["type", "priority"])
def test_eval_writes_a_chart(task: str, tmp_path: Path) -> None:
    require_data()
    png = tmp_path / f"eval-{task}.png"
    args = ["eval", "--task", task, "--data-dir", str(DATA), "--out-png", str(png)]
    result = CliRunner().invoke(app(), args)
    assert result.exit_code == 0, result.output
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "warning" not in result.output  # the data matches what the model was trained on


@pytest.mark.data
@pytest.mark.parametrize("task", ["security", "duplicates"])
def test_eval_reproduces_the_training_figures(task: str, tmp_path: Path) -> None:
    """``eval`` recomputes what ``train`` recorded (same protocol, same model)."""
    from ai_pipeline.triage.artifact import load_artifact

    require_data()
    artifact = load_artifact()
    png = tmp_path / "x.png"
    args = ["eval", "--task", task, "--data-dir", str(DATA), "--out-png", str(png)]
    result = CliRunner().invoke(app(), args)
    assert result.exit_code == 0, result.output
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "warning" not in result.output  # the data matches what the model was trained on
    if task == "security":
        assert artifact.security is not None
        pooled = artifact.security.scores["pooled"]
        expected = [f"{pooled['precision']:.4f}", f"{pooled['recall']:.4f}"]
    else:
        expected = [f"{v:.4f}" for v in artifact.duplicates.scores["recall_at"].values()]
    for figure in expected:
        assert figure in result.output, (figure, result.output)


def test_train_from_an_export_needs_out_and_usable_labels(tmp_path: Path) -> None:
    export = tmp_path / "issues.jsonl"
    export.write_text('{"title": "a", "type": "bug"}\n', encoding="utf-8")
    no_out = CliRunner().invoke(app(), ["train", "--from", str(export)])
    assert no_out.exit_code == USAGE_ERROR_EXIT_CODE
    assert "--from needs --out" in no_out.output
    too_few = CliRunner().invoke(app(), ["train", "--from", str(export), "--out", str(tmp_path)])
    assert too_few.exit_code == USAGE_ERROR_EXIT_CODE
    assert "labels nothing trainable" in too_few.output


@pytest.mark.data
def test_train_from_an_export_refits_what_it_labels(tmp_path: Path) -> None:
    """A team's export (here: two NLBSE repositories as JSONL, with its own label names)
    refits the type model; everything the export does not label stays the shipped one."""
    import csv
    import json

    from ai_pipeline.triage.artifact import load_artifact

    require_data()
    names = {"bug": "Defect", "feature": "Enhancement", "question": "Support"}
    lines = []
    with (DATA / "nlbse24" / "issues_train.csv").open(newline="", encoding="utf-8") as handle:
        for row in csv.DictReader(handle):
            if row["repo"] in ("facebook/react", "opencv/opencv"):
                record = {"title": row["title"], "body": row["body"][:2000], "repo": row["repo"]}
                lines.append(json.dumps({**record, "type": names[row["label"]]}))
    export = tmp_path / "issues.jsonl"
    export.write_text("\n".join(lines) + "\n", encoding="utf-8")
    out = tmp_path / "model"
    result = CliRunner().invoke(app(), ["train", "--from", str(export), "--out", str(out)])
    assert result.exit_code == 0, result.output
    mine, shipped = load_artifact(out), load_artifact()
    assert mine.metadata["export"] == {"file": "issues.jsonl", "records": 600, "trained": ["type"]}
    assert mine.classifier("type").scores["n_train"] == 480
    assert mine.classifier("type").scores["macro_f1"] > 0.7
    assert not (
        mine.classifier("type").coef.shape == shipped.classifier("type").coef.shape
        and (mine.classifier("type").coef == shipped.classifier("type").coef).all()
    )
    for kept in ("priority", "severity"):
        assert (mine.classifier(kept).coef == shipped.classifier(kept).coef).all()
    assert mine.security is not None and shipped.security is not None
    assert mine.security.scorer == shipped.security.scorer
