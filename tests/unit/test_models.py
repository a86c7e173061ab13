"""Bug reports as the API accepts them: bounded, and free of control characters."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

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
