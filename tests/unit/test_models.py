"""Bug reports as the API accepts them: bounded, and free of control characters; triage
results old and new."""

from __future__ import annotations

import orjson
import pytest
from pydantic import ValidationError

from ai_pipeline.domain.events import ReportTriaged, decode
from ai_pipeline.domain.models import IssueType, Priority, SecurityBand, TriageResult
from tests.factories import report


def test_control_characters_and_terminal_escapes_are_removed() -> None:
    r = report(
        title="nul \x00 bell \x07 end",
        description="line one\n\tindented \x1b[31mred\x1b[0m text\r\n",
        steps_to_reproduce=["step \x1b]0;title\x07 one"],
        environment={"os": "Linux\x00\x1b[2J"},
    )
    assert r.title == "nul  bell  end"
    assert r.description == "line one\n\tindented red text"
    assert "\x1b" not in r.steps_text() and "\x07" not in r.steps_text()
    assert r.environment_text() == "os: Linux"


def test_deep_metadata_and_too_many_attachments_are_refused() -> None:
    with pytest.raises(ValidationError, match="nests deeper"):
        report(metadata={"a": {"b": {"c": {"d": {"e": {"f": 1}}}}}})
    with pytest.raises(ValidationError):
        report(attachments=[{"name": f"a{i}"} for i in range(21)])


def test_the_reporter_must_be_an_email_address() -> None:
    with pytest.raises(ValidationError, match="email"):
        report(reporter="not an address")


def test_metadata_with_too_many_keys_is_refused() -> None:
    with pytest.raises(ValidationError, match="more than 200 keys"):
        report(metadata={f"k{i}": 1 for i in range(201)})
    with pytest.raises(ValidationError, match="more than 200 keys"):
        report(metadata={"a": [{f"k{i}": 1} for i in range(201)]})


def test_a_control_character_in_the_reporter_address_is_refused() -> None:
    with pytest.raises(ValidationError, match="email"):
        report(reporter="a\x00b@example.com")


def test_attachment_names_lose_control_characters() -> None:
    r = report(attachments=[{"name": "log\x1b[2J.txt", "url": "http://x.example/\x00a"}])
    assert r.attachments[0].name == "log.txt" and r.attachments[0].url == "http://x.example/a"


# A ReportTriaged as the bus carried it before calibration: no band, reasons or
# suggestions, priority and severity always set, a bare security flag.
OLD_TRIAGED = {
    "kind": "report_triaged",
    "request_id": "r-old",
    "report": {
        "id": "BUG-old",
        "title": "Login leaks the session id",
        "description": "The session id is in the URL.",
        "reporter": "someone@example.com",
    },
    "triage": {
        "type": "bug",
        "priority": "high",
        "severity": "major",
        "category": "security",
        "labels": ["bug", "security"],
        "duplicate_candidates": [],
        "duplicate_of": None,
        "missing_information": [],
        "security_sensitive": True,
        "assignee_suggestion": None,
        "confidence": {"type": 0.9, "security": 0.95},
        "engine": "local",
    },
}


def test_a_triage_result_written_before_bands_still_decodes() -> None:
    event = decode(orjson.dumps(OLD_TRIAGED))
    assert isinstance(event, ReportTriaged)
    result = event.triage
    assert result.security_band is SecurityBand.PRIVATE and result.security_sensitive
    assert (result.reasons, result.suggested) == ({}, [])
    assert result.priority is Priority.HIGH and result.decided("type")
    public = {**OLD_TRIAGED["triage"], "security_sensitive": False}  # type: ignore[dict-item]
    assert TriageResult.model_validate(public).security_band is SecurityBand.PUBLIC


def test_the_flag_follows_the_band_and_empty_levels_are_not_decided() -> None:
    result = TriageResult(
        type=IssueType.BUG, category="other", labels=[], security_band=SecurityBand.REVIEW
    )
    assert result.security_sensitive and result.priority is None
    assert not result.decided("priority") and result.decided("type")
    round_trip = TriageResult.model_validate_json(result.model_dump_json())
    assert round_trip == result
