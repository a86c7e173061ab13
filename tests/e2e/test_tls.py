"""HTTPS: the real service serves TLS with the configured certificate, and refuses to start
on half a configuration."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.service import ServiceProcess
from tests.tls import tls_env

pytestmark = pytest.mark.e2e


def test_the_service_answers_https_verified_against_its_certificate(tmp_path: Path) -> None:
    with ServiceProcess(tmp_path, env=tls_env(tmp_path, days=365)) as service:
        assert service.url.startswith("https://")
        with service.client() as client:
            assert client.get("/api/v1/health").json()["status"] in ("healthy", "degraded")
        with pytest.raises(httpx.ConnectError):  # no CA vouches for a self-signed cert
            httpx.get(f"{service.url}/api/v1/health", timeout=5)
        with pytest.raises(httpx.HTTPError):  # and plain HTTP is not served on the port
            httpx.get(f"http://127.0.0.1:{service.port}/api/v1/health", timeout=5)


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"AI_PIPELINE_TLS_CERT_FILE": "cert.pem"}, "go together: set both"),
        (
            {"AI_PIPELINE_TLS_CERT_FILE": "missing.pem", "AI_PIPELINE_TLS_KEY_FILE": "key.pem"},
            "TLS file missing.pem does not exist or cannot be read",
        ),
    ],
)
def test_the_service_refuses_to_start_on_half_a_tls_configuration(
    tmp_path: Path, env: dict[str, str], message: str
) -> None:
    (tmp_path / "cert.pem").write_text("x")
    (tmp_path / "key.pem").write_text("x")
    clean = {k: v for k, v in os.environ.items() if not k.startswith("AI_PIPELINE_")}
    result = subprocess.run(
        [sys.executable, "-m", "ai_pipeline.cli", "serve", "--port", "0"],
        cwd=tmp_path,
        env={**clean, **env, "COLUMNS": "200"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert message in result.stderr and "Traceback" not in result.stderr
