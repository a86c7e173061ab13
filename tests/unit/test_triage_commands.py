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
@pytest.mark.parametrize("task", ["type", "security", "duplicates"])
def test_eval_writes_a_chart(task: str, tmp_path: Path) -> None:
    require_data()
    png = tmp_path / f"eval-{task}.png"
    args = ["eval", "--task", task, "--data-dir", str(DATA), "--out-png", str(png)]
    result = CliRunner().invoke(app(), args)
    assert result.exit_code == 0, result.output
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "warning" not in result.output  # the data matches what the model was trained on
