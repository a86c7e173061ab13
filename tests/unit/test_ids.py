"""Request ids are valid UUIDv7, unique, and sort by creation time."""

from __future__ import annotations

import time
import uuid

from ai_pipeline.domain.ids import new_request_id


def test_request_ids_are_version_7_uuids() -> None:
    parsed = uuid.UUID(new_request_id())
    assert parsed.version == 7 and parsed.variant == uuid.RFC_4122


def test_request_ids_are_unique_and_ordered_by_time() -> None:
    first = [new_request_id() for _ in range(1000)]
    time.sleep(0.002)
    later = new_request_id()
    assert len(set(first)) == 1000
    assert all(rid < later for rid in first)
