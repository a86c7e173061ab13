"""Priority and severity from explicit signals only, each with its reason; nothing else."""

from __future__ import annotations

import pytest

from ai_pipeline.domain.models import Priority, Severity
from ai_pipeline.triage.signals import OPENING, explicit_levels


def levels(title: str, body: str = "", urgent: bool = False):  # type: ignore[no-untyped-def]
    return explicit_levels(title, f"{title}\n{body}", urgent)


def test_nothing_explicit_leaves_both_empty() -> None:
    found = levels("Button label is misaligned", "The save button sits 2px too low.")
    assert (found.priority, found.severity, found.reasons) == (None, None, {})


@pytest.mark.parametrize(
    ("title", "body", "priority", "severity", "word"),
    [
        ("Site is down for all users", "", Priority.CRITICAL, Severity.BLOCKER, "site is down"),
        ("Sync lost all my bookmarks", "", Priority.HIGH, Severity.MAJOR, "lost all my bookmarks"),
        ("Export no longer works since 2.3", "", Priority.HIGH, None, "no longer works"),
        ("Editor crashes on save", "Segfault.", None, Severity.MAJOR, "crashes"),
        ("Typo in the settings dialog", "", Priority.LOW, Severity.MINOR, "typo"),
    ],
)
def test_each_signal_sets_its_levels_with_the_words_that_gave_them(
    title: str, body: str, priority: Priority | None, severity: Severity | None, word: str
) -> None:
    found = levels(title, body)
    assert (found.priority, found.severity) == (priority, severity)
    for name, value in (("priority", priority), ("severity", severity)):
        if value is not None:
            assert word in found.reasons[name] and found.reasons[name].endswith(value.value)


def test_a_level_the_report_states_wins_over_one_inferred() -> None:
    found = levels("App crashes when idle", "Severity: minor\nPriority: P1\nIt crashes at night.")
    assert (found.priority, found.severity) == (Priority.HIGH, Severity.MINOR)
    assert found.reasons["severity"] == "the report states 'severity: minor' → minor"


def test_the_most_urgent_inferred_signal_wins() -> None:
    found = levels("Crash after upgrade: data loss", "Since 2.0 the app crashes and lost my data")
    assert found.severity is Severity.MAJOR and found.priority is Priority.HIGH


def test_an_urgent_security_report_raises_priority() -> None:
    found = levels("Login form", urgent=True)
    assert (found.priority, found.severity) == (Priority.HIGH, Severity.MAJOR)
    assert found.reasons["priority"] == "the private security band → high"
    assert levels("Login form").priority is None


def test_signals_deep_in_a_log_do_not_count() -> None:
    log = "x" * OPENING + "\nolder run: the worker crashed and was restarted"
    assert levels("Slow search results", log).severity is None
    assert levels("Slow search results", "the worker crashed").severity is Severity.MAJOR


def test_a_typo_counts_only_in_the_title() -> None:
    assert levels("Search is slow", "there is a typo in my query").priority is None
