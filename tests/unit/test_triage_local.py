"""LocalTriageEngine on the shipped artifact: sane answers on hand-written reports, each with
its reason; labels only where a field cleared its calibrated threshold."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest

from ai_pipeline.domain.models import (
    BugReport,
    DuplicateCandidate,
    IssueType,
    Priority,
    SecurityBand,
    Severity,
)
from ai_pipeline.triage import rules
from ai_pipeline.triage.engine import TriageEngine
from ai_pipeline.triage.local import LocalTriageEngine
from ai_pipeline.triage.targets import TriageTargets
from tests.factories import linking_duplicates

# Learned fields with a calibrated confidence; category is a keyword rule (a reason, no
# confidence), priority and severity come from explicit signals without a team model.
CONFIDENCE_FIELDS = {"type", "security", "duplicate"}


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


def candidate(report_id: str, similarity: float) -> DuplicateCandidate:
    return DuplicateCandidate(bug_report_id=report_id, issue_number=7, similarity=similarity)


def test_is_a_triage_engine(engine: LocalTriageEngine) -> None:
    as_protocol: TriageEngine = engine
    assert as_protocol.name == "local"


def test_crash_report_is_a_bug_with_its_reason(engine: LocalTriageEngine) -> None:
    result = engine.decide(CRASH, [])
    assert result.type is IssueType.BUG
    assert result.category == "crash"
    assert result.engine == "local"
    assert result.reasons["type"] == "'crashes' + a stack trace or error → bug"
    assert result.reasons["category"].endswith("→ crash")
    # A crash is an explicit signal for severity; nothing here says how urgent it is.
    assert result.severity is Severity.MAJOR and result.priority is None
    assert "severity: major" in result.labels
    assert not any(label.startswith("priority:") for label in result.labels)


def test_add_support_is_a_feature(engine: LocalTriageEngine) -> None:
    result = engine.decide(FEATURE, [])
    assert result.type is IssueType.FEATURE
    assert "enhancement" in result.labels
    assert result.missing_information == []  # no repro needed for a feature


def test_how_do_i_is_a_question(engine: LocalTriageEngine) -> None:
    result = engine.decide(QUESTION, [])
    assert result.type is IssueType.QUESTION
    assert "a question in the title" in result.reasons["type"]


def test_a_type_label_only_above_its_threshold_needs_triage_below(
    engine: LocalTriageEngine,
) -> None:
    for sample in (CRASH, FEATURE, QUESTION, XSS):
        result = engine.decide(sample, [])
        type_label = rules.TYPE_LABELS[result.type]
        if "type" in result.suggested:
            assert type_label not in result.labels and "needs-triage" in result.labels
        else:
            assert type_label in result.labels and "needs-triage" not in result.labels


def test_an_injection_payload_is_evidence_and_files_privately(engine: LocalTriageEngine) -> None:
    result = engine.decide(XSS, [])
    assert result.security_band is SecurityBand.PRIVATE and result.security_sensitive
    assert "security" in result.labels
    assert result.reasons["security"] == "'<script>alert(', 'alert(1)' → private"
    assert "security" not in result.confidence  # a rule decided: a reason, no odds
    assert result.priority is Priority.HIGH  # the private band is an explicit signal


def test_naming_a_vulnerability_goes_to_review(engine: LocalTriageEngine) -> None:
    named = report("SQL injection in the search box", "The search box is vulnerable to SQLi.")
    result = engine.decide(named, [])
    assert result.security_band is SecurityBand.REVIEW and result.security_sensitive
    assert result.reasons["security"].startswith("mentions ")


def test_plain_ui_bug_is_public_with_a_calibrated_confidence(engine: LocalTriageEngine) -> None:
    result = engine.decide(
        report("Save button is misaligned", "The save button overlaps the cancel button."), []
    )
    assert result.security_band is SecurityBand.PUBLIC and not result.security_sensitive
    assert result.confidence["security"] > 0.9  # that it is not a security report
    assert result.reasons["security"] == "no security evidence or wording"
    assert (result.priority, result.severity) == (None, None)


def test_confidences_are_calibrated_probabilities_of_the_learned_fields(
    engine: LocalTriageEngine,
) -> None:
    for sample in (CRASH, FEATURE, QUESTION):
        result = engine.decide(sample, [candidate("old-1", 0.3)])
        assert set(result.confidence) == CONFIDENCE_FIELDS
        assert all(0.0 < value < 1.0 for value in result.confidence.values())
        assert {"type", "security", "duplicate", "category"} <= set(result.reasons)
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


def test_the_shipped_duplicate_of_never_acts_at_the_default_target(
    engine: LocalTriageEngine,
) -> None:
    """No similarity reached precision 0.9 on SeaMonkey: candidates stay suggestions."""
    assert math.isinf(engine.thresholds["duplicate"])
    result = engine.decide(CRASH, [candidate("old-1", 0.99)])
    assert result.duplicate_of is None and "possible-duplicate" not in result.labels
    assert result.duplicate_candidates[0].bug_report_id == "old-1"
    assert result.reasons["duplicate"] == "closest is #7 (0.99): below the duplicate bar"


def test_duplicate_of_needs_the_similarity_its_target_was_measured_at(
    engine: LocalTriageEngine,
) -> None:
    linking = LocalTriageEngine(linking_duplicates(engine.artifact, 0.8), engine.embedder)
    close = linking.decide(CRASH, [candidate("old-1", 0.81), candidate("old-2", 0.2)])
    assert close.duplicate_of is not None
    assert close.duplicate_of.bug_report_id == "old-1"
    assert "possible-duplicate" in close.labels
    assert close.reasons["duplicate"] == "matches #7 (0.81) → duplicate"
    far = linking.decide(CRASH, [candidate("old-1", 0.79)])
    assert far.duplicate_of is None
    assert "possible-duplicate" not in far.labels


def test_a_stricter_target_acts_on_fewer_values(engine: LocalTriageEngine) -> None:
    strict = LocalTriageEngine(engine.artifact, engine.embedder, TriageTargets(min_precision=0.999))
    assert math.isinf(strict.thresholds["type"])
    result = strict.decide(FEATURE, [])
    assert "type" in result.suggested and "needs-triage" in result.labels
    loose = LocalTriageEngine(engine.artifact, engine.embedder, TriageTargets(min_precision=0.8))
    assert loose.thresholds["type"] < engine.thresholds["type"]


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
    assert result.duplicate_candidates[0].issue_number == 12
    assert result.duplicate_candidates[0].similarity > 0.8


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
    assert borrowed.priority == own.priority  # only type and security read the embedding
