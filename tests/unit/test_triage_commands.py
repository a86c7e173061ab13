"""The train/eval sub-commands: registration, missing data dir, eval on the shipped model."""

from __future__ import annotations

from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from ai_pipeline.triage.commands import USAGE_ERROR_EXIT_CODE, register
from tests.conftest import DATA, require_data
from tests.factories import report


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
@pytest.mark.parametrize("task", ["type", "priority", "security", "duplicates"])
def test_eval_prints_calibrated_figures_beside_targets_and_draws_reliability(
    task: str, tmp_path: Path
) -> None:
    """``eval`` recomputes what ``train`` recorded (same protocol, same model), with the
    calibration figures and a reliability diagram."""
    from ai_pipeline.triage.artifact import load_artifact

    require_data()
    artifact = load_artifact()
    png = tmp_path / f"eval-{task}.png"
    args = ["eval", "--task", task, "--data-dir", str(DATA), "--out-png", str(png)]
    result = CliRunner().invoke(app(), args, env={"COLUMNS": "250"})
    assert result.exit_code == 0, result.output
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "warning" not in result.output  # the data matches what the model was trained on
    assert "ECE" in result.output
    expected: list[str]
    if task == "type":
        calibration = artifact.classifier("type").scores["calibration"]
        expected = [f"{calibration['ece']:.4f}", "≥ 0.9", "≥ 0.814"]
    elif task == "priority":
        explicit = artifact.classifier("priority").scores["explicit_signals"]
        expected = ["explicit signals only", f"{explicit['share_set']:.4f}"]
    elif task == "security":
        assert artifact.security is not None
        pooled = artifact.security.scores["pooled"]
        expected = [f"{pooled['recall_private_review']:.4f}", "left out", "≥ 0.8"]
    else:
        recall = artifact.duplicates.scores["recall_at"]
        expected = [f"{recall['1']:.3f} / {recall['5']:.3f} / {recall['10']:.3f}", "Hadoop"]
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
        assert not mine.classifier(kept).decides  # still the generic model: signals decide
    assert mine.calibrations["type"] != shipped.calibrations["type"]
    assert mine.calibrations["duplicate"] == shipped.calibrations["duplicate"]
    assert mine.security is not None and shipped.security is not None
    assert mine.security.scorer == shipped.security.scorer


@pytest.mark.data
def test_a_team_model_of_priority_decides_like_type(tmp_path: Path) -> None:
    """Priority labels in the export make priority a learned, calibrated field again."""
    import csv
    import json

    from ai_pipeline.triage.artifact import load_artifact
    from ai_pipeline.triage.local import LocalTriageEngine

    require_data()
    with (DATA / "gitbugs" / "hadoop" / "hadoop_bugs.csv").open(newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))[:800]
    export = tmp_path / "issues.jsonl"
    export.write_text(
        "".join(
            json.dumps(
                {"title": r["Summary"], "body": r["Description"][:2000], "priority": r["Priority"]}
            )
            + "\n"
            for r in rows
        ),
        encoding="utf-8",
    )
    out = tmp_path / "model"
    result = CliRunner().invoke(app(), ["train", "--from", str(export), "--out", str(out)])
    assert result.exit_code == 0, result.output
    mine = load_artifact(out)
    assert mine.classifier("priority").decides and not mine.classifier("severity").decides
    engine = LocalTriageEngine(mine)
    decided = engine.decide(report(title="Typo in the docs", description="A typo."), [])
    assert decided.priority is not None  # the team's model always gives a value
    assert decided.reasons["priority"].startswith("your team's labelled issues")
    assert "priority" in decided.confidence
    assert ("priority" in decided.suggested) == (
        not any(label.startswith("priority:") for label in decided.labels)
    )
