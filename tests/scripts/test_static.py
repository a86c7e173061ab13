"""Every shell script of the project is clean under shellcheck and can be run as typed."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from tests.conftest import require_tool

SCRIPTS = Path(__file__).resolve().parents[2] / "scripts"
SHELL_SCRIPTS = sorted([*SCRIPTS.glob("*.sh"), SCRIPTS / "services", SCRIPTS / "lib" / "common.sh"])


def test_every_script_is_clean_under_shellcheck() -> None:
    shellcheck = require_tool("shellcheck")
    result = subprocess.run(
        [shellcheck, "-x", *map(str, SHELL_SCRIPTS)],
        cwd=SCRIPTS,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize(
    "script", [s for s in SHELL_SCRIPTS if s.parent == SCRIPTS], ids=lambda p: p.name
)
def test_every_script_is_executable(script: Path) -> None:
    assert os.access(script, os.X_OK)
