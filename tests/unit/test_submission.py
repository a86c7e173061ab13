"""Accepting a report: once per id, its first messages never lost, never sent twice."""

from __future__ import annotations

from pathlib import Path

import pytest

from ai_pipeline.bootstrap import bootstrap
from ai_pipeline.submission import Submission
from tests.conftest import make_settings
from tests.factories import report

pytestmark = pytest.mark.anyio


async def messages_on_bug_reports(container: object) -> int:
    bus = container.bus  # type: ignore[attr-defined]
    return len(await bus.peek("bug-reports", 100))


@pytest.mark.parametrize(
    ("state_file", "expected"),
    [("pipeline.db", 1), ("state.db", 2)],
    ids=["same-file-outbox", "separate-store"],
)
async def test_a_resubmission_publishes_again_only_where_the_outbox_is_not_atomic(
    tmp_path: Path, state_file: str, expected: int
) -> None:
    settings = make_settings(
        f"sqlite:///{tmp_path / 'pipeline.db'}", state=f"sqlite:///{tmp_path / state_file}"
    )
    container = bootstrap(settings)
    await container.bus.start()
    await container.store.start()
    r = report()
    first = await Submission(container).submit(r, None)
    again = await Submission(container).submit(r, None)
    assert first.created and not again.created
    assert again.state.request_id == first.state.request_id
    assert await messages_on_bug_reports(container) == expected
    for db in container.databases:
        await db.close()
