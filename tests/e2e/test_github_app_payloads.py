"""GitHub's own webhook examples, signed by GitHub's own SDK, posted to the real service.

Every ``issues``, ``issue_comment``, ``installation*`` and ``ping`` example of
@octokit/webhooks-examples is validated against @octokit/webhooks-schemas, signed by
@octokit/webhooks-methods' ``sign()`` in node, and posted over HTTP: each is accepted (202),
the issues it opens are triaged to the end, and a redelivery of each does nothing again.
Wrong signatures get 401 in the envelope, counted, and the payload is never logged.
"""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from ai_pipeline.intake.github.signature import sign
from tests.conftest import require_tool
from tests.fakes.github_server import UNPACED, FakeGitHub, run_fake_github
from tests.fakes.github_webhooks import WEBHOOK_PATH
from tests.octokit import (
    EXAMPLES,
    METHODS,
    SCHEMAS,
    Example,
    NodeSigner,
    examples,
    schema_validator,
)
from tests.service import ServiceProcess, wait_until_terminal

pytestmark = pytest.mark.e2e

TOKEN = "ghp_" + "octo0token" * 4
SECRET = "It's a Secret to Everybody"
EVENTS = ("issues", "issue_comment", "installation", "installation_repositories", "ping")
MARKER = "zebra-giraffe-canary-7731"  # put in a payload: must never reach the log


@pytest.fixture(scope="module")
def node() -> str:
    return require_tool("node")


@pytest.fixture(scope="module")
def all_examples() -> list[Example]:
    for path in (EXAMPLES, SCHEMAS, METHODS):
        require_tool(path.name, path)  # installed by scripts/test-services.sh
    return examples(EVENTS)


def repositories(found: list[Example]) -> set[str]:
    return {e.payload["repository"]["full_name"] for e in found if "repository" in e.payload}


@pytest.fixture(scope="module")
def service(
    tmp_path_factory: pytest.TempPathFactory, all_examples: list[Example]
) -> Iterator[tuple[ServiceProcess, FakeGitHub]]:
    with run_fake_github(token=TOKEN) as gh:
        env = {
            "AI_PIPELINE_GITHUB_TOKEN": TOKEN,
            "AI_PIPELINE_GITHUB_API_URL": gh.url,
            "AI_PIPELINE_GITHUB_WEBHOOK_SECRET": SECRET,
            # Every repository the examples name is acted on, so their issues are triaged.
            "AI_PIPELINE_GITHUB_REPOSITORIES": ",".join(sorted(repositories(all_examples))),
            **UNPACED,
        }
        with ServiceProcess(tmp_path_factory.mktemp("octokit"), env) as svc:
            yield svc, gh


def post(svc: ServiceProcess, event: str, body: bytes, headers: dict[str, str]) -> httpx.Response:
    base = {"Content-Type": "application/json", "X-GitHub-Event": event}
    return httpx.post(
        f"{svc.url}{WEBHOOK_PATH}", content=body, headers={**base, **headers}, timeout=30
    )


def test_every_example_conforms_to_its_schema_but_for_fields_added_since(
    all_examples: list[Example],
) -> None:
    counts = Counter(e.event for e in all_examples)
    assert counts["issues"] >= 25 and counts["issue_comment"] >= 5 and counts["ping"] >= 1
    assert counts["installation"] >= 5 and counts["installation_repositories"] >= 1
    older = []
    for example in all_examples:
        errors = list(schema_validator(example).iter_errors(example.payload))
        # An example older than the schema lacks properties GitHub added since; anything
        # else (a wrong type, an unknown action) would be a payload we must not trust.
        assert all(type(e.kind).__name__ == "Required" for e in errors), (example.name, errors)
        if errors:
            older.append(example.name)
    assert len(older) <= 5, older


def test_our_signature_is_the_one_githubs_sdk_computes(
    node: str, all_examples: list[Example]
) -> None:
    bodies = [e.body for e in all_examples[:5]] + ["Hello, World!", "ünïcödé ✓"]
    signed = NodeSigner(node).sign_all(SECRET, bodies)
    assert signed == [sign(SECRET.encode(), body.encode()) for body in bodies]
    # GitHub's documented test vector.
    assert signed[5] == "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"


def test_every_example_is_accepted_triaged_and_acted_on_once(
    node: str,
    all_examples: list[Example],
    service: tuple[ServiceProcess, FakeGitHub],
) -> None:
    svc, _gh = service
    signatures = NodeSigner(node).sign_all(SECRET, [e.body for e in all_examples])
    deliveries = {e.name: str(uuid.uuid4()) for e in all_examples}
    outcomes: dict[str, dict[str, Any]] = {}
    for example, signature in zip(all_examples, signatures, strict=True):
        headers = {
            "X-GitHub-Delivery": deliveries[example.name],
            "X-Hub-Signature-256": signature,
        }
        response = post(svc, example.event, example.body.encode(), headers)
        assert response.status_code == 202, (example.name, response.text)
        outcomes[example.name] = response.json()

    by_outcome = Counter(o["outcome"] for o in outcomes.values())
    opened = [e for e in all_examples if e.name.startswith("issues.opened")]
    issues = {(e.payload["repository"]["full_name"], e.payload["issue"]["number"]) for e in opened}
    # One request per issue: examples opening the same issue twice are one request.
    triaged = [outcomes[e.name] for e in opened if outcomes[e.name]["outcome"] == "triaged"]
    assert len(triaged) == len(issues) and len({t["request_id"] for t in triaged}) == len(issues)
    assert {outcomes[e.name]["outcome"] for e in opened} <= {"triaged", "duplicate"}
    assert by_outcome["acknowledged"] == sum(
        e.event != "issues" and e.event != "issue_comment" for e in all_examples
    )
    for name, outcome in outcomes.items():
        if name.startswith(("issues.labeled", "issues.unlabeled")):
            assert outcome["outcome"] == "recorded", (name, outcome)
    # Pull requests' comments, bots and the rest are ignored with a reason, never an error.
    assert all(
        o["outcome"] in ("triaged", "duplicate", "recorded", "acknowledged")
        or o["outcome"].startswith("ignored_")
        for o in outcomes.values()
    ), by_outcome

    triaged = sorted({o["request_id"] for o in outcomes.values() if o["request_id"]})
    with svc.client() as client:
        final = wait_until_terminal(client, triaged, timeout=180)
        metrics = client.get("/metrics").text
    for doc in final.values():
        assert doc["status"] == "completed", doc
        assert doc["source"] == "github" and doc["bug_report_id"].startswith("gh:")
        acted = doc["progress"]["github"]["data"]["acted_on"]
        # The fake GitHub holds none of the examples' repositories: the issue is "gone".
        assert acted["skipped"] == "gone" and acted["comment_url"] is None

    # A redelivery (GitHub's retry, or its "Redeliver" button) does nothing twice.
    again = []
    for example, signature in zip(all_examples, signatures, strict=True):
        headers = {
            "X-GitHub-Delivery": deliveries[example.name],
            "X-Hub-Signature-256": signature,
        }
        again.append(post(svc, example.event, example.body.encode(), headers).json()["outcome"])
    assert set(again) == {"duplicate"}
    assert 'ai_pipeline_github_webhooks_total{event="issues",outcome="triaged"}' in metrics


def test_wrong_signatures_get_401_in_the_envelope_are_counted_and_never_logged(
    all_examples: list[Example], service: tuple[ServiceProcess, FakeGitHub]
) -> None:
    svc, _gh = service
    example = next(e for e in all_examples if e.event == "issues" and e.action == "opened")
    payload = {**example.payload, "issue": {**example.payload["issue"], "body": MARKER}}
    body = Example(example.event, example.action, payload, 0).body.encode()
    good = sign(SECRET.encode(), body)
    changed = bytearray(body)
    changed[len(changed) // 2] ^= 0x01  # one byte
    sha1 = "sha1=" + "0" * 40
    attempts = {
        "one byte changed": (bytes(changed), {"X-Hub-Signature-256": good}),
        "another secret": (body, {"X-Hub-Signature-256": sign(b"another secret", body)}),
        "no signature": (body, {}),
        "sha1 only": (body, {"X-Hub-Signature": sha1}),
        "sha1 in the sha256 header": (body, {"X-Hub-Signature-256": sha1}),
    }
    for name, (content, headers) in attempts.items():
        response = post(svc, "issues", content, {"X-GitHub-Delivery": str(uuid.uuid4()), **headers})
        assert response.status_code == 401, name
        error = response.json()["error"]
        assert error["code"] == "UNAUTHORIZED" and MARKER not in response.text, name

    with svc.client() as client:
        metrics = client.get("/metrics").text
        total = client.get("/api/v1/requests", params={"status": "all", "limit": 100}).json()
    refusals = {
        line.split('reason="')[1].split('"')[0]: float(line.rsplit(" ", 1)[1])
        for line in metrics.splitlines()
        if line.startswith("ai_pipeline_github_webhook_refusals_total{")
    }
    assert refusals == {"mismatch": 2.0, "missing": 2.0, "unsupported": 1.0}
    assert MARKER not in svc.log()
    assert all(r["bug_report_id"] != MARKER for r in total["requests"])
    # The same body, rightly signed, is accepted: the refusals were the signatures.
    ok = post(
        svc, "issues", body, {"X-GitHub-Delivery": str(uuid.uuid4()), "X-Hub-Signature-256": good}
    )
    assert ok.status_code == 202 and MARKER not in svc.log()


def test_without_a_secret_the_route_does_not_exist(tmp_path: Path) -> None:
    with ServiceProcess(tmp_path) as svc:
        body = b'{"zen": "Design for failure."}'
        response = post(
            svc,
            "ping",
            body,
            {"X-GitHub-Delivery": "d-1", "X-Hub-Signature-256": sign(b"", body)},
        )
    assert response.status_code == 404
    assert response.json()["error"]["code"] in ("REQUEST_NOT_FOUND", "INVALID_REQUEST")
