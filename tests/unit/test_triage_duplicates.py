"""DuplicateIndex: ranking, exclusion, similarity bounds, growth in chunks."""

from __future__ import annotations

import random

import numpy as np
import pytest

from ai_pipeline.triage import duplicates
from ai_pipeline.triage.artifact import load_artifact
from ai_pipeline.triage.duplicates import DuplicateIndex
from ai_pipeline.triage.linear import SparseVector, TfidfFeatures

REPORTS = [
    ("r1", "App crashes when saving a file", "Clicking save in the editor crashes the app."),
    ("r2", "Dark mode colours are wrong", "Text is unreadable in dark mode on the settings page."),
    ("r3", "Login fails with SSO", "Single sign-on login returns error 500 from the server."),
    ("r4", "Export to PDF is slow", "Exporting a 20 page document takes two minutes."),
]


@pytest.fixture(scope="module")
def features() -> TfidfFeatures:
    return TfidfFeatures(load_artifact().duplicates.vectorizer)


@pytest.fixture
def index(features: TfidfFeatures) -> DuplicateIndex:
    built = DuplicateIndex(features)
    for n, (report_id, title, text) in enumerate(REPORTS):
        built.add(report_id, f"req-{report_id}", title, f"{title}\n{text}", issue_number=n or None)
    return built


def test_near_identical_report_comes_first(index: DuplicateIndex) -> None:
    found = index.query(
        "App crashed while saving the file\nThe editor crashes when I click save.",
        title="App crashed while saving the file",
    )
    assert found[0].bug_report_id == "r1"
    assert found[0].request_id == "req-r1"
    assert found[0].title == "App crashes when saving a file"
    assert all(found[0].similarity > other.similarity for other in found[1:])


def test_results_are_sorted_and_bounded(index: DuplicateIndex) -> None:
    found = index.query("login error on the settings page when saving", k=10)
    similarities = [c.similarity for c in found]
    assert similarities == sorted(similarities, reverse=True)
    assert all(0.0 < s <= 1.0 for s in similarities)
    assert len(found) <= len(REPORTS)


def test_identical_text_has_similarity_one(index: DuplicateIndex) -> None:
    _, title, text = REPORTS[1]
    best = index.query(f"{title}\n{text}", title=title)[0]
    assert best.bug_report_id == "r2"
    assert best.similarity == pytest.approx(1.0)


def test_excludes_the_report_itself(index: DuplicateIndex) -> None:
    _, title, text = REPORTS[0]
    found = index.query(f"{title}\n{text}", k=5, exclude_bug_report_id="r1", title=title)
    assert "r1" not in [c.bug_report_id for c in found]


def test_unrelated_or_empty_query_finds_nothing(index: DuplicateIndex) -> None:
    assert index.query("zzzz qqqq") == []
    assert index.query("") == []
    assert index.query("crash", k=0) == []
    assert DuplicateIndex(index._features).query("anything") == []


def test_k_limits_results(index: DuplicateIndex) -> None:
    assert len(index.query("the app login page export file", k=2)) == 2


def test_issue_numbers_are_kept_and_updated(index: DuplicateIndex) -> None:
    assert index.set_issue_number("req-r1", 42)
    assert not index.set_issue_number("req-unknown", 1)
    _, title, text = REPORTS[0]
    assert index.query(f"{title}\n{text}", title=title)[0].issue_number == 42


def test_re_adding_an_id_replaces_it(index: DuplicateIndex) -> None:
    index.add("r2", "req-r2b", "Kernel panic on boot", "Kernel panic on boot after update")
    assert len(index) == len(REPORTS)
    old = index.query("Dark mode colours are wrong unreadable settings page", k=5)
    assert "r2" not in [c.bug_report_id for c in old]
    assert index.query("kernel panic on boot")[0].bug_report_id == "r2"


def test_chunked_storage_matches_brute_force(
    features: TfidfFeatures, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Tiny blocks force many seals and merges; scores must not depend on the layout.
    monkeypatch.setattr(duplicates, "PENDING_ROWS", 3)
    monkeypatch.setattr(duplicates, "MERGE_FANOUT", 2)
    rng = random.Random(7)
    words = [
        "crash",
        "save",
        "file",
        "login",
        "error",
        "page",
        "slow",
        "export",
        "dark",
        "mode",
        "server",
        "editor",
    ]
    texts = [" ".join(rng.choices(words, k=6)) for _ in range(50)]
    index = DuplicateIndex(features)
    for i, text in enumerate(texts):
        index.add(f"b{i}", None, text[:12], text)
    assert len(index._chunks) < 50 // 3  # merged
    query = index.vector("crash", "crash save file")
    dense = np.array([_dense(index.vector(t[:12], t), features) for t in texts])
    expected = np.clip(dense @ _dense(query, features), 0.0, 1.0)
    np.testing.assert_allclose(index.scores(query), expected, atol=1e-12)


def _dense(vector: SparseVector, features: TfidfFeatures) -> np.ndarray:
    out = np.zeros(features.n_features)
    out[vector.indices] = vector.values
    return out


def test_the_index_forgets_its_oldest_reports_past_twice_its_capacity() -> None:
    from ai_pipeline.triage import duplicates

    index = duplicates.DuplicateIndex.from_artifact(capacity=100)
    total = 2 * 100 + 3 * duplicates.PENDING_ROWS
    for i in range(total):
        index.add(f"B-{i}", f"r-{i}", f"report {i}", f"crash number{i} in module{i % 7}")
    kept = len(index)
    assert 100 <= kept < total
    found = index.query("crash in module1 report", k=total)
    oldest_kept = total - kept
    assert found and all(int(c.bug_report_id[2:]) >= oldest_kept for c in found)
    assert index.set_issue_number(f"r-{total - 1}", 7)
    assert not index.set_issue_number("r-0", 7)


def test_a_known_duplicate_folds_into_its_canonical_report(index: DuplicateIndex) -> None:
    title = "Zebra theme: storing a drawing kills the painter"
    index.add("r5", "req-r5", title, f"{title}\nPainter dies storing drawings.", canonical_id="r1")
    index.add("r6", "req-r6", title, f"{title}\nZebra painter dies again.", canonical_id="r5")
    found = index.query(f"{title}\nZebra painter dies again.", k=3, title=title)
    ids = [c.bug_report_id for c in found]
    assert ids.count("r1") == 1 and "r5" not in ids and "r6" not in ids
    first = found[0]
    assert (first.bug_report_id, first.via_bug_report_id) == ("r1", "r6")
    assert first.similarity > 0.9  # the evidence: the match with r6
    # The canonical report itself is never offered as its own duplicate's duplicate.
    assert all(
        c.bug_report_id != "r1"
        for c in index.query(title, k=3, title=title, exclude_bug_report_id="r1")
    )


def test_semantic_similarity_is_fused_and_bounded(features: TfidfFeatures) -> None:
    built = DuplicateIndex(features)
    unit = np.zeros(duplicates.DIMENSIONS, dtype=np.float32)
    unit[0] = 1.0
    built.add("a", None, "alpha", "alpha words", embedding=unit)
    built.add("b", None, "zzzz", "qqqq", embedding=-unit)  # opposite meaning, no shared words
    found = built.query("alpha words", title="alpha", embedding=unit)
    assert [c.bug_report_id for c in found] == ["a"]
    assert found[0].similarity == pytest.approx(1.0)
    # Lexical part alone carries only its weight when the query has no embedding match.
    orthogonal = np.zeros_like(unit)
    orthogonal[1] = 1.0
    lexical = built.query("alpha words", title="alpha", embedding=orthogonal)[0].similarity
    assert lexical == pytest.approx(duplicates.LEXICAL_WEIGHT)
