"""The hostile corpus (tests/data/hostile_reports.py) through the real service: what is
filed, what an LLM is sent and what is logged carry no secret, no live markup, no working
mention and no marker but ours; injected instructions change nothing; malformed bodies get
the right 4xx and the service keeps serving."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from ai_pipeline.drafting.marker import request_id_in
from ai_pipeline.triage.llm import ENGINE
from tests.data.hostile_reports import (
    HOSTILE,
    MALFORMED,
    SLOW_TEXT,
    Hostile,
    _fill,
    slow_report_fields,
)
from tests.e2e.test_github_e2e import TOKEN, github_env
from tests.factories import report_dict
from tests.fakes.github_server import run_fake_github
from tests.llm_server import RecordingProxy
from tests.service import ServiceProcess, wait_until_terminal

pytestmark = pytest.mark.e2e

GITHUB_BODY_LIMIT = 65_536  # GitHub answers 422 to a longer issue body

# Outside code, any of these would render or be fetched by the reader's browser.
LIVE = re.compile(
    r"<(?:script|img|iframe|svg|a\s|https?:)"  # raw HTML and <…> autolinks
    # [text](target) and ![alt](src): a bracket after no backslash, or after an even
    # number of them (escaped backslashes, the bracket itself live).
    r"|(?:^|[^\\])(?:\\\\)*\]\("
    r"|^\s{0,3}(?:\\\\)*\[[^\]]*(?<!\\)\]:"  # [ref]: target definitions
    r"|(?:https?://|www\.)"  # bare URLs, which GitHub autolinks
    r"|(?<![\w:/])//[a-z0-9]|\b(?:https?|javascript):[^\s/]"  # //host, https:host
    r"|(?<![\w`])@(?!\u200b)[A-Za-z0-9]",  # a mention that would ping
    re.IGNORECASE | re.MULTILINE,
)
# Table rows: a pipe after no backslash, or after an even number of them.
LIVE_PIPE = re.compile(r"(?:^|[^\\])(?:\\\\)*\|")
FENCE = re.compile(r"^(`{3,})[^\n]*\n.*?^\1$", re.DOTALL | re.MULTILINE)
CODE_SPAN = re.compile(r"`[^`\n]*`")


def rendered_prose(body: str) -> str:
    """The parts of a Markdown body outside code blocks and code spans (our own marker
    dropped): where markup would be live."""
    return CODE_SPAN.sub("", FENCE.sub("", body)).replace(body[body.rindex("<!--") :], "")


def submit_all(client: httpx.Client, reports: tuple[Hostile, ...]) -> dict[str, Hostile]:
    by_request = {}
    for n, hostile in enumerate(reports):
        body = report_dict(id=f"HOSTILE-{n}", **hostile.fields)
        response = client.post("/api/v1/bug-reports", json=body)
        assert response.status_code == 201, (hostile.name, response.text)
        by_request[response.json()["request_id"]] = hostile
    return by_request


def filed_issues(
    client: httpx.Client, by_request: dict[str, Hostile], timeout: float
) -> dict[str, tuple[dict[str, Any], dict[str, Any]]]:
    """request id → (final status document, filed issue)."""
    # Reports of the security review band wait for a maintainer: released as they stand.
    done = wait_until_terminal(client, list(by_request), timeout=timeout, release_held=True)
    filed = {}
    for request_id, doc in done.items():
        assert doc["status"] == "completed", (by_request[request_id].name, doc)
        issue = client.get(f"/api/v1/issues/{doc['github_issue_number']}").json()
        filed[request_id] = (doc, issue)
    return filed


def assert_issue_is_safe(request_id: str, hostile: Hostile, issue: dict[str, Any]) -> None:
    text = issue["title"] + "\n" + issue["body"]
    for secret in hostile.secrets:
        assert secret not in text, (hostile.name, secret)
    assert issue["body"].count("ai-pipeline:request=") == 1, hostile.name
    assert request_id_in(issue["body"]) == request_id
    prose = rendered_prose(issue["body"])
    live = LIVE.findall(prose)
    assert not live, (hostile.name, live)
    reporter = prose.split("## Triage\n")[0]  # our own table follows
    assert not LIVE_PIPE.findall(reporter), (hostile.name, LIVE_PIPE.findall(reporter))
    assert not LIVE.search(issue["title"].replace("@\u200b", "")), hostile.name
    assert not {"mallory", "@mallory"} & set(issue["assignees"]), hostile.name


def assert_log_is_clean(service: ServiceProcess, reports: tuple[Hostile, ...]) -> None:
    log = service.log()
    for hostile in reports:
        for secret in hostile.secrets:
            assert secret not in log, (hostile.name, secret)


def test_hostile_reports_file_safe_issues_through_the_local_engine(tmp_path: Path) -> None:
    with ServiceProcess(tmp_path, {"AI_PIPELINE_LOG_LEVEL": "DEBUG"}) as service:
        with service.client() as client:
            by_request = submit_all(client, HOSTILE)
            filed = filed_issues(client, by_request, timeout=180)
            for request_id, (doc, issue) in filed.items():
                hostile = by_request[request_id]
                assert_issue_is_safe(request_id, hostile, issue)
                triage = doc["progress"]["triage"]["data"]
                if hostile.injected:  # a typo or a tooltip stays a small matter
                    assert triage["priority"] != "critical", (hostile.name, triage)
                    suggestion = triage["assignee_suggestion"] or {}
                    assert suggestion.get("assignee") != "mallory", hostile.name
        assert_log_is_clean(service, HOSTILE)


def test_malformed_and_huge_bodies_get_a_4xx_envelope_and_the_service_keeps_serving(
    tmp_path: Path,
) -> None:
    with ServiceProcess(tmp_path) as service, service.client() as client:
        for case in MALFORMED:
            response = client.post(
                "/api/v1/bug-reports",
                content=case.body,
                headers={"Content-Type": case.content_type},
            )
            assert response.status_code == case.status, (case.name, response.text[:300])
            error = response.json()["error"]
            assert error["code"] and error["message"], case.name
            assert "Traceback" not in response.text
        assert client.get("/api/v1/health").status_code == 200
        accepted = client.post("/api/v1/bug-reports", json=report_dict())
        assert accepted.status_code == 201, accepted.text
        wait_until_terminal(client, [accepted.json()["request_id"]])


# A few of each kind: an LLM call costs up to half a minute on the shared 2-core test box.
LLM_CASES = tuple(
    h
    for h in HOSTILE
    if h.name
    in {"ignore-instructions", "fake-fence", "chat-template-tokens", "aws-keys", "personal-data"}
)


def test_hostile_reports_through_the_llm_engine_send_only_redacted_fenced_data(
    tmp_path: Path, llm_server: Any
) -> None:
    proxy = RecordingProxy(llm_server.url).start()
    env = {
        "AI_PIPELINE_TRIAGE_ENGINE": "llm",
        "AI_PIPELINE_LLM_BASE_URL": proxy.base_url,
        "AI_PIPELINE_LLM_MODEL": llm_server.model,
        "AI_PIPELINE_LLM_ALLOWED_ASSIGNEES": "alice,bob",
        "AI_PIPELINE_LLM_TIMEOUT_SECONDS": "90",
        "AI_PIPELINE_LLM_MAX_RETRIES": "0",
        "AI_PIPELINE_LOG_LEVEL": "DEBUG",
    }
    try:
        with ServiceProcess(tmp_path, env) as service:
            with service.client() as client:
                by_request = submit_all(client, LLM_CASES)
                filed = filed_issues(client, by_request, timeout=400)
                engines = {doc["progress"]["triage"]["data"]["engine"] for doc, _ in filed.values()}
                assert ENGINE in engines, engines  # the LLM answered, not only the fallback
                for request_id, (doc, issue) in filed.items():
                    assert_issue_is_safe(request_id, by_request[request_id], issue)
                    suggestion = doc["progress"]["triage"]["data"]["assignee_suggestion"]
                    assert (suggestion or {}).get("assignee") in (None, "alice", "bob")
            assert_log_is_clean(service, LLM_CASES)
        # A report the local engine finds security-sensitive never reaches the LLM
        # (AI_PIPELINE_LLM_SECURITY_REPORTS=deny): every other one does.
        sent = [doc for doc, _ in filed.values() if not local_flagged(doc)]
        assert 0 < len(sent) < len(LLM_CASES)
        assert len(proxy.chat_requests) >= len(sent)
        for request in proxy.chat_requests:
            assert_prompt_is_redacted_and_fenced(request["body"]["messages"])
    finally:
        proxy.stop()


def local_flagged(doc: dict[str, Any]) -> bool:
    """Triage kept the local engine's result because it flagged the report."""
    triage = doc["progress"]["triage"]["data"]
    return bool(triage["security_sensitive"]) and triage["engine"] != ENGINE


def assert_prompt_is_redacted_and_fenced(messages: list[dict[str, str]]) -> None:
    sent = json.dumps(messages, ensure_ascii=False)
    for hostile in LLM_CASES:
        for secret in hostile.secrets:
            assert secret not in sent and json.dumps(secret)[1:-1] not in sent, hostile.name
    system, user = messages[0]["content"], messages[-1]["content"]
    assert "mallory" not in system and "<|im_start|>" not in system
    # The report sits between our nonce delimiters, JSON-encoded on one line: the forged
    # delimiters and the injected lines are inside that line, not lines of their own.
    nonce = re.search(r"<<<REPORT ([0-9a-f]{24})>>>", user)
    assert nonce is not None
    lines = user.split("\n")
    opening = lines.index(f"<<<REPORT {nonce.group(1)}>>>")
    assert lines[opening + 2] == f"<<<END REPORT {nonce.group(1)}>>>"
    assert len(lines) == opening + 3
    data = json.loads(lines[opening + 1])
    outside = "\n".join(lines[:opening])
    assert "mallory" not in outside and "SYSTEM:" not in outside
    assert isinstance(data, dict)


# ---------------------------------------------------------------- reports built to be slow


def test_reports_built_to_be_slow_are_filed_while_the_api_keeps_answering(
    tmp_path: Path,
) -> None:
    """Each report fills every field with what a formerly super-linear pattern choked on
    (64 KiB of dashes ending in a letter took minutes on the event loop, where the API
    runs too). While they are processed the API answers health checks again and again;
    each is filed, its body within GitHub's limit."""
    with ServiceProcess(tmp_path) as service, service.client() as client:
        ids = {}
        for name, text in SLOW_TEXT.items():
            body = report_dict(id=f"SLOW-{name}", **slow_report_fields(text))
            response = client.post("/api/v1/bug-reports", json=body)
            assert response.status_code == 201, (name, response.text[:300])
            ids[response.json()["request_id"]] = name
        answered_meanwhile, pending, released = 0, set(ids), set()
        deadline = time.monotonic() + 300
        while pending and time.monotonic() < deadline:
            assert client.get("/api/v1/health").status_code in (200, 503)
            for request_id in list(pending):
                doc = client.get(f"/api/v1/requests/{request_id}/status").json()
                if doc["status"] in ("completed", "failed"):
                    pending.discard(request_id)
                elif doc["current_step"] == "review" and request_id not in released:
                    # Text about private keys is a security doubt, held for a maintainer:
                    # one releases it as it stands.
                    client.post(f"/api/v1/reviews/{request_id}", json={}).raise_for_status()
                    released.add(request_id)
            if pending:
                answered_meanwhile += 1
        assert not pending, [ids[r] for r in pending]
        # The loop served the API all along: many answers before the last report was done.
        assert answered_meanwhile >= 5, answered_meanwhile
        final = wait_until_terminal(client, list(ids))
        for request_id, doc in final.items():
            assert doc["status"] == "completed", (ids[request_id], doc["error_message"])
            issue = client.get(f"/api/v1/issues/{doc['github_issue_number']}").json()
            assert len(issue["body"]) <= GITHUB_BODY_LIMIT, ids[request_id]
            assert request_id_in(issue["body"]) == request_id


EMAIL_DENSE = _fill("a@b.cc ")  # linear work, but a lot of it: every 7th character a match


def test_a_report_over_a_small_budget_is_dead_lettered_with_its_reason_and_the_rest_flow(
    tmp_path: Path,
) -> None:
    # CPU seconds, not time on the clock: an ordinary report spends under 0.07 in either
    # agent, this one about 0.6 in redaction, on a busy box as on an idle one.
    env = {"AI_PIPELINE_REPORT_CPU_BUDGET_SECONDS": "0.25"}
    with ServiceProcess(tmp_path, env) as service, service.client() as client:
        # Warm: the first report pays for loading what every later one reuses.
        first = client.post("/api/v1/bug-reports", json=report_dict(id="WARM")).json()
        wait_until_terminal(client, [first["request_id"]])
        slow = client.post(
            "/api/v1/bug-reports", json=report_dict(id="SLOW", **slow_report_fields(EMAIL_DENSE))
        ).json()["request_id"]
        ordinary = [
            client.post("/api/v1/bug-reports", json=report_dict(id=f"OK-{n}")).json()["request_id"]
            for n in range(3)
        ]
        final = wait_until_terminal(client, [slow, *ordinary], timeout=180)
        assert final[slow]["status"] == "failed"
        assert "AI_PIPELINE_REPORT_CPU_BUDGET_SECONDS" in final[slow]["error_message"]
        assert [final[r]["status"] for r in ordinary] == ["completed"] * 3
        listed = subprocess.run(
            [sys.executable, "-m", "ai_pipeline.cli", "dead-letters", "--json"],
            env=service.env,
            cwd=service.workdir,
            capture_output=True,
            text=True,
            check=True,
        )
        (dead,) = [row for row in json.loads(listed.stdout) if row["key"] == slow]
        assert dead["attempts"] == "1"  # dead-lettered at once, never redelivered
        assert "AI_PIPELINE_REPORT_CPU_BUDGET_SECONDS" in dead["reason"]


def test_a_body_of_pasted_markup_in_every_field_is_filed_on_github_without_a_422(
    tmp_path: Path,
) -> None:
    """64 KiB of "<&" everywhere (five times longer once escaped): GitHub's fake refuses
    bodies over 65,536 characters with a 422, as GitHub does."""
    fields = slow_report_fields(SLOW_TEXT["markup"])
    fields["attachments"] = [
        {"name": "<&" * 100, "url": "https://x.example/" + "<&" * 900} for _ in range(20)
    ]
    with run_fake_github(token=TOKEN) as gh:
        with (
            ServiceProcess(tmp_path, github_env(gh.url, gh.repository)) as service,
            service.client() as client,
        ):
            rid = client.post(
                "/api/v1/bug-reports", json=report_dict(id="MARKUP", **fields)
            ).json()["request_id"]
            (doc,) = wait_until_terminal(client, [rid], timeout=180).values()
        assert doc["status"] == "completed", doc["error_message"]
        (issue,) = gh.issues_for(rid)
        assert len(issue["body"]) <= GITHUB_BODY_LIMIT
        assert request_id_in(issue["body"]) == rid
        assert "the full text is kept in the service" in issue["body"]
