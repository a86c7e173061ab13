"""The standing checks run with the suite, so a CI log shows them pass or fail."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


@pytest.mark.parametrize(
    "command",
    [
        ["ruff", "check", "src", "tests", "bench", "monitoring", "scripts"],
        ["ruff", "format", "--check", "src", "tests", "bench", "monitoring", "scripts"],
        ["mypy", "src"],
    ],
    ids=["ruff-check", "ruff-format", "mypy-strict"],
)
def test_code_passes(command: list[str]) -> None:
    result = subprocess.run(
        [str(BIN / command[0]), *command[1:]], cwd=REPO, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
