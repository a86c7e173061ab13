"""LocalTriageEngine on the shipped artifact: sane answers on hand-written reports."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from ai_pipeline.domain.models import (
    BugReport,
    DuplicateCandidate,
    IssueType,
    Priority,
    Severity,
)
from ai_pipeline.triage.engine import TriageEngine
from ai_pipeline.triage.local import LocalTriageEngine

CONFIDENCE_FIELDS = {"type", "priority", "severity", "category", "security", "duplicate"}


@pytest.fixture(scope="module")
def engine() -> LocalTriageEngine:
    return LocalTriageEngine.load()


def report(title: str, description: str, **fields: Any) -> BugReport:
    return BugReport(
        id=fields.pop("id", "br-1"),
        title=title,
        description=description,
        reporter="reporter@example.com",
        **fields,
    )


CRASH = report(
    "App crashes with NullPointerException when saving",
    "Every time I click Save the application crashes. Stack trace:\n"
    "java.lang.NullPointerException at com.example.Editor.save(Editor.java:42)",
)
FEATURE = report(
    "Please add support for dark mode",
    "It would be great to add support for a dark theme. Feature request: an option in "
    "the settings to enable dark mode would be nice.",
)
QUESTION = report(
    "How do I configure the proxy settings?",
    "How do I configure the HTTP proxy? I could not find it in the docs. Is it possible "
    "to set it with an environment variable?",
)
XSS = report(
    "Stored XSS in comment field",
    "Posting <script>alert(1)</script> as a comment executes it for every visitor. "
    "This is a cross-site scripting vulnerability.",
)


def test_is_a_triage_engine(engine: LocalTriageEngine) -> None:
    as_protocol: TriageEngine = engine
    assert as_protocol.name == "local"


def test_crash_report_is_a_bug(engine: LocalTriageEngine) -> None:
    result = engine.decide(CRASH, [])
    assert result.type is IssueType.BUG
    assert result.category == "crash"
    assert result.labels[0] == "bug"
    assert result.engine == "local"


def test_add_support_is_a_feature(engine: LocalTriageEngine) -> None:
    result = engine.decide(FEATURE, [])
    assert result.type is IssueType.FEATURE
    assert "enhancement" in result.labels
    assert result.missing_information == []  # no repro needed for a feature


def test_how_do_i_is_a_question(engine: LocalTriageEngine) -> None:
    assert engine.decide(QUESTION, []).type is IssueType.QUESTION


def test_xss_report_is_security_sensitive(engine: LocalTriageEngine) -> None:
    result = engine.decide(XSS, [])
    assert result.security_sensitive
    assert "security" in result.labels
    assert result.confidence["security"] >= 0.9


def test_plain_ui_bug_is_not_security_sensitive(engine: LocalTriageEngine) -> None:
    result = engine.decide(
        report("Save button is misaligned", "The save button overlaps the cancel button."), []
    )
    assert not result.security_sensitive


def test_every_field_has_a_confidence(engine: LocalTriageEngine) -> None:
    for sample in (CRASH, FEATURE, QUESTION, XSS):
        result = engine.decide(sample, [])
        assert set(result.confidence) == CONFIDENCE_FIELDS
        assert all(0.0 <= value <= 1.0 for value in result.confidence.values())
        assert isinstance(result.priority, Priority)
        assert isinstance(result.severity, Severity)
        assert result.assignee_suggestion is None


def test_missing_information_and_needs_info(engine: LocalTriageEngine) -> None:
    result = engine.decide(CRASH, [])
    assert "steps_to_reproduce" in result.missing_information
    assert "needs-info" in result.labels
    complete = report(
        CRASH.title,
        CRASH.description,
        steps_to_reproduce=["open a file", "click save"],
        expected_behavior="file is saved",
        actual_behavior="crash",
        environment={"os": "Ubuntu 22.04"},
    )
    completed = engine.decide(complete, [])
    assert completed.missing_information == []
    assert "needs-info" not in completed.labels


def test_needs_triage_follows_thresholds(engine: LocalTriageEngine) -> None:
    for sample in (CRASH, FEATURE, QUESTION, XSS):
        result = engine.decide(sample, [])
        uncertain = [
            f
            for f in ("type", "priority", "severity", "category")
            if result.confidence[f] < engine.thresholds[f]
        ]
        assert ("needs-triage" in result.labels) == bool(uncertain)


def candidate(report_id: str, similarity: float) -> DuplicateCandidate:
    return DuplicateCandidate(bug_report_id=report_id, issue_number=7, similarity=similarity)


def test_duplicate_of_needs_the_calibrated_similarity(engine: LocalTriageEngine) -> None:
    threshold = engine.thresholds["duplicate"]
    close = engine.decide(CRASH, [candidate("old-1", threshold + 0.01), candidate("old-2", 0.2)])
    assert close.duplicate_of is not None
    assert close.duplicate_of.bug_report_id == "old-1"
    assert "possible-duplicate" in close.labels
    far = engine.decide(CRASH, [candidate("old-1", threshold - 0.01)])
    assert far.duplicate_of is None
    assert far.duplicate_candidates[0].bug_report_id == "old-1"
    assert "possible-duplicate" not in far.labels


def test_candidates_are_sorted_and_exclude_the_report(engine: LocalTriageEngine) -> None:
    result = engine.decide(
        CRASH, [candidate("a", 0.3), candidate(CRASH.id, 1.0), candidate("b", 0.9)]
    )
    assert [c.bug_report_id for c in result.duplicate_candidates] == ["b", "a"]


def test_engine_and_index_work_together(engine: LocalTriageEngine) -> None:
    index = engine.new_duplicate_index()
    index.add("old", "req-old", CRASH.title, CRASH.full_text(), issue_number=12)
    retyped = report(
        "App crashes with a NullPointerException on save",
        CRASH.description,
        id="br-2",
    )
    found = index.query(
        retyped.full_text(), k=5, exclude_bug_report_id=retyped.id, title=retyped.title
    )
    result = engine.decide(retyped, found)
    assert result.duplicate_of is not None
    assert result.duplicate_of.issue_number == 12


def test_embed_gives_the_vector_the_type_model_reads(engine: LocalTriageEngine) -> None:
    vector = engine.embed(QUESTION)
    assert vector.shape == (384,)
    assert np.isclose(np.linalg.norm(vector), 1.0, atol=1e-4)
    assert engine.decide(QUESTION, [], vector) == engine.decide(QUESTION, [])


def test_the_embedding_moves_the_type_decision(engine: LocalTriageEngine) -> None:
    own = engine.decide(QUESTION, [], engine.embed(QUESTION))
    borrowed = engine.decide(QUESTION, [], engine.embed(CRASH))
    assert own.type is IssueType.QUESTION
    assert borrowed.confidence["type"] != own.confidence["type"]
    assert borrowed.priority == own.priority  # only the type model reads the embedding
