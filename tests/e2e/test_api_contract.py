"""The HTTP contract of DESIGN.md: shapes, pagination and the error envelope everywhere."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from tests.factories import report_dict
from tests.service import ServiceProcess

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[httpx.Client]:
    with ServiceProcess(tmp_path_factory.mktemp("api")) as svc, svc.client() as c:
        yield c


def assert_envelope(response: httpx.Response, status: int, code: str) -> dict[str, object]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    error = response.json()["error"]
    assert error["code"] == code
    assert set(error) == {"code", "message", "details", "timestamp", "request_id"}
    assert error["message"] and "Traceback" not in response.text
    assert error["request_id"] == response.headers["x-request-id"]
    return error  # type: ignore[no-any-return]


def test_malformed_json_is_invalid_request(client: httpx.Client) -> None:
    r = client.post(
        "/api/v1/bug-reports", content=b'{"id": ', headers={"content-type": "application/json"}
    )
    assert_envelope(r, 400, "INVALID_REQUEST")


def test_a_json_array_is_not_a_report(client: httpx.Client) -> None:
    assert_envelope(client.post("/api/v1/bug-reports", json=[1, 2]), 400, "INVALID_REQUEST")


def test_wrong_content_type_is_refused(client: httpx.Client) -> None:
    r = client.post(
        "/api/v1/bug-reports", content=b"title=x", headers={"content-type": "text/plain"}
    )
    assert_envelope(r, 415, "INVALID_REQUEST")


def test_a_body_over_one_mebibyte_is_too_large(client: httpx.Client) -> None:
    big = report_dict(description="x" * (1024 * 1024 + 1))
    assert_envelope(client.post("/api/v1/bug-reports", json=big), 413, "PAYLOAD_TOO_LARGE")


def test_a_chunked_body_over_the_limit_is_too_large(client: httpx.Client) -> None:
    def chunks() -> Iterator[bytes]:
        for _ in range(20):
            yield b"x" * 65536

    r = client.post(
        "/api/v1/bug-reports", content=chunks(), headers={"content-type": "application/json"}
    )
    assert_envelope(r, 413, "PAYLOAD_TOO_LARGE")


def test_missing_and_wrong_fields_are_validation_errors_with_details(client: httpx.Client) -> None:
    r = client.post("/api/v1/bug-reports", json={"id": "X-1", "title": "", "reporter": "nope"})
    error = assert_envelope(r, 422, "VALIDATION_ERROR")
    fields = {d["field"] for d in error["details"]}  # type: ignore[union-attr, index]
    assert {"title", "description", "reporter"} <= fields


def test_an_unknown_request_id_is_request_not_found(client: httpx.Client) -> None:
    assert_envelope(client.get("/api/v1/requests/nope/status"), 404, "REQUEST_NOT_FOUND")


@pytest.mark.parametrize(
    "query", ["status=bogus", "limit=0", "limit=101", "offset=-1", "limit=abc"]
)
def test_bad_query_values_are_validation_errors(client: httpx.Client, query: str) -> None:
    assert_envelope(client.get(f"/api/v1/requests?{query}"), 422, "VALIDATION_ERROR")


def test_bad_metrics_period_is_a_validation_error(client: httpx.Client) -> None:
    assert_envelope(client.get("/api/v1/metrics?period=2h"), 422, "VALIDATION_ERROR")


def test_an_unknown_route_answers_in_the_envelope(client: httpx.Client) -> None:
    assert_envelope(client.get("/api/v1/nothing-here"), 404, "INVALID_REQUEST")


def test_a_wrong_method_answers_in_the_envelope(client: httpx.Client) -> None:
    r = client.delete("/api/v1/bug-reports")
    assert_envelope(r, 405, "INVALID_REQUEST")
    assert "POST" in r.headers["allow"]


def test_pagination_reports_total_and_has_more(client: httpx.Client) -> None:
    for _ in range(3):
        assert client.post("/api/v1/bug-reports", json=report_dict()).status_code == 201
    page = client.get("/api/v1/requests", params={"status": "all", "limit": 2}).json()
    assert len(page["requests"]) == 2
    assert page["pagination"]["limit"] == 2 and page["pagination"]["has_more"] is True
    assert page["pagination"]["total"] >= 3


def test_health_names_every_component(client: httpx.Client) -> None:
    doc = client.get("/api/v1/health").json()
    assert doc["status"] == "healthy"
    assert set(doc["components"]) == {
        "coordinator_agent",
        "triage_agent",
        "ticket_creation_agent",
        "github_api_agent",
        # Closing the loop with the reporter (issue 17): no request step of their own.
        "notifier_agent",
        "delivery_agent",
        "reply_agent",
        "bus",
        "state",
        "llm",
        "tracker",
    }
    assert set(doc["metrics"]) == {
        "requests_processed_today",
        "success_rate_24h",
        "average_processing_time_seconds",
    }


def test_metrics_document_has_totals_percentiles_and_agents(client: httpx.Client) -> None:
    doc = client.get("/api/v1/metrics", params={"period": "1h"}).json()
    assert set(doc["processing_time_seconds"]) >= {"average", "median", "p95", "p99"}
    assert set(doc["agents"]) == {"triage_agent", "ticket_creation_agent", "github_api_agent"}


def test_openapi_and_docs_are_served(client: httpx.Client) -> None:
    spec = client.get("/openapi.json").json()
    assert "/api/v1/bug-reports" in spec["paths"]
    body = spec["paths"]["/api/v1/bug-reports"]["post"]["requestBody"]
    assert "title" in body["content"]["application/json"]["schema"]["properties"]
    assert client.get("/docs").status_code == 200
