"""The real service with the LLM engine and drafter against a real llama.cpp server."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from ai_pipeline.drafting.marker import request_id_in
from ai_pipeline.triage.llm import ENGINE
from tests.factories import report_dict
from tests.service import ServiceProcess, wait_until_terminal

pytestmark = pytest.mark.e2e


def test_the_service_files_issues_triaged_and_drafted_by_the_llm(
    tmp_path: Path, llm_server: Any
) -> None:
    env = {
        "AI_PIPELINE_TRIAGE_ENGINE": "llm",
        "AI_PIPELINE_LLM_BASE_URL": llm_server.base_url,
        "AI_PIPELINE_LLM_MODEL": llm_server.model,
        "AI_PIPELINE_LLM_DRAFT_ISSUES": "true",
        "AI_PIPELINE_LLM_TIMEOUT_SECONDS": "90",
        # SmolLM2 may call any report security-sensitive (the LLM may raise the flag): the
        # draft would then be withheld from it (tested in test_llm_engine). Here the path
        # under test is the LLM's draft, whatever the model says; a report it calls a
        # security doubt (the review band) waits for a maintainer, who releases it below.
        "AI_PIPELINE_LLM_SECURITY_REPORTS": "allow",
    }
    with ServiceProcess(tmp_path, env) as svc, svc.client() as client:
        report = report_dict()
        response = client.post("/api/v1/bug-reports", json=report)
        assert response.status_code == 201, response.text
        request_id = response.json()["request_id"]
        (doc,) = wait_until_terminal(client, [request_id], timeout=240, release_held=True).values()
        assert doc["status"] == "completed", doc
        assert doc["progress"]["triage"]["data"]["engine"] == ENGINE
        issue = client.get(f"/api/v1/issues/{doc['github_issue_number']}").json()
        assert request_id_in(issue["body"]) == request_id
        assert issue["body"].startswith("## Overview\n")
        assert "Segmentation fault (core dumped)" in issue["body"]  # the reporter's words
        metrics = client.get("/metrics").text
        ok = [
            line
            for line in metrics.splitlines()
            if line.startswith("ai_pipeline_llm_calls_total") and 'outcome="ok"' in line
        ]
        assert ok and float(ok[0].rsplit(" ", 1)[1]) == 2  # one triage, one draft
        assert "ai_pipeline_llm_budget_remaining_tokens" in metrics
