"""The runbook scripts keep reading the API once it requires keys: they send
AI_PIPELINE_API_KEY (a `read` key) with every GET."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.scripts.test_health_scripts import base_env, output, run_script, service_env
from tests.service import ServiceProcess

pytestmark = pytest.mark.e2e


def test_the_morning_check_reads_a_closed_api_with_the_key_it_is_given(tmp_path: Path) -> None:
    with ServiceProcess(tmp_path, {"AI_PIPELINE_AUTH_CACHE_SECONDS": "0"}) as svc:
        env = service_env(svc)
        created = subprocess.run(
            [sys.executable, "-m", "ai_pipeline.cli", "keys", "create", "--name", "ops",
             "--scope", "read"],
            env={**base_env(), **env}, cwd=tmp_path, capture_output=True, text=True,
            timeout=60, check=True,
        )  # fmt: skip
        assert httpx.get(f"{svc.url}/api/v1/metrics").status_code == 401
        without = output(run_script("morning-health-check.sh", "--target", "local", env=env))
        assert "could not read /api/v1/metrics" in without
        secret = created.stdout.strip()
        keyed = {**env, "AI_PIPELINE_API_KEY": secret}
        result = run_script("morning-health-check.sh", "--target", "local", env=keyed)
        assert "last 24 h: 0 requests" in output(result), output(result)
        assert "could not read" not in output(result)
        assert secret not in svc.log()
