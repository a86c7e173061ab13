"""Schemathesis against the service's own OpenAPI description (``/openapi.json``): generated
requests to every operation of the real service get no 5xx, only documented status codes,
and bodies that match the documented schemas.

Bounded and deterministic: 25 examples per operation from a fixed seed, no deadline (the
shared 2-core box is slow at times, and latency is benchmarked elsewhere).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    response_schema_conformance,
    status_code_conformance,
)

from tests.service import ServiceProcess

pytestmark = pytest.mark.e2e

CHECKS = [not_a_server_error, status_code_conformance, response_schema_conformance]


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServiceProcess]:
    with ServiceProcess(tmp_path_factory.mktemp("fuzz")) as running:
        yield running


def fuzz(operation: Any, base_url: str) -> None:
    @given(case=operation.as_strategy())
    @settings(
        max_examples=25,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    def run(case: Any) -> None:
        case.call_and_validate(base_url=base_url, checks=CHECKS)

    run()


def test_every_operation_answers_as_documented(service: ServiceProcess) -> None:
    # Driven by hand rather than through schemathesis' pytest plugin, whose lazy loader
    # does not run under pytest 9.
    schema = schemathesis.openapi.from_url(f"{service.url}/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 5
    failures = {}
    for operation in operations:
        try:
            fuzz(operation, service.url)
        except Exception as failure:  # every operation is fuzzed; all failures reported
            failures[operation.label] = str(failure)[:2000]
    assert not failures, "\n\n".join(f"{k}:\n{v}" for k, v in failures.items())
