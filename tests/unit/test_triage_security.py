"""The transferable security score: its parts, its threshold, the engine's decision."""

from __future__ import annotations

import numpy as np
import pytest

from ai_pipeline.triage import rules
from ai_pipeline.triage.embeddings import DIMENSIONS
from ai_pipeline.triage.security import (
    SecurityScorer,
    decide_security,
    f_beta_threshold,
    fit_scorer,
    leave_one_project_out,
    vocabulary_score,
)

DIRECTION = np.zeros(DIMENSIONS, dtype=np.float32)
DIRECTION[0] = 1.0


def unit(x: float) -> np.ndarray:
    """An embedding whose cosine with DIRECTION is ``x``."""
    v = np.zeros(DIMENSIONS, dtype=np.float32)
    v[0], v[1] = x, np.sqrt(1 - x * x)
    return v


SCORER = SecurityScorer(
    direction=tuple(float(v) for v in DIRECTION),
    similarity_mean=0.0,
    similarity_std=0.1,
    vocabulary_mean=0.0,
    vocabulary_std=1.0,
    threshold=3.0,
)


def test_vocabulary_counts_kinds_not_repetitions() -> None:
    assert vocabulary_score("The menu is misaligned") == 0.0
    one_kind = vocabulary_score("password password password password")
    two_kinds = vocabulary_score("password leaked over http without ssl")
    assert 0 < one_kind < two_kinds
    assert one_kind == pytest.approx(np.log1p(4))


def test_scores_add_both_standardised_signals() -> None:
    assert SCORER.score(unit(0.2), "nothing here") == pytest.approx(2.0)
    assert SCORER.score(unit(0.2), "xss") == pytest.approx(2.0 + np.log1p(1))
    assert SCORER.confidence(SCORER.threshold) == pytest.approx(0.5)


def test_the_decision_uses_the_score_and_strong_keywords() -> None:
    assert decide_security(SCORER, "Menu misaligned", unit(0.0)).sensitive is False
    above = decide_security(SCORER, "Menu misaligned", unit(0.35))
    assert (above.sensitive, above.reason) == (True, "score")
    keyword = decide_security(SCORER, "CVE-2024-1234 in the parser", unit(-0.5))
    assert (keyword.sensitive, keyword.reason) == (True, "keyword")
    assert keyword.confidence >= rules.STRONG_RULE_CONFIDENCE
    # Without an embedding the semantic half is neutral, not a crash.
    assert decide_security(SCORER, "Menu misaligned", None).sensitive is False


def test_f2_threshold_prefers_recall() -> None:
    scores = np.array([0.9, 0.8, 0.7, 0.6, 0.1])
    positive = np.array([True, False, True, False, False])
    # F2 at 0.7 (2 of 2 found, 1 false alarm) beats 0.9 (1 of 2, none).
    assert f_beta_threshold(positive, scores) == pytest.approx(0.7)


def test_fit_and_leave_one_project_out_never_see_the_scored_project() -> None:
    rng = np.random.default_rng(7)
    texts, vectors, positive, projects = [], [], [], []
    for project, shift in (("a", 0.0), ("b", 0.0), ("c", 0.3)):
        for i in range(60):
            hot = i % 6 == 0
            texts.append("attacker bypasses authentication" if hot else "button misaligned")
            vectors.append(unit(float(np.clip(0.5 * hot + shift + rng.normal(0, 0.05), -1, 1))))
            positive.append(hot)
            projects.append(project)
    embeddings, truth = np.stack(vectors), np.array(positive)
    scorer = fit_scorer(DIRECTION, embeddings, texts, truth)
    assert scorer.similarity_std > 0 and scorer.vocabulary_std > 0
    results = leave_one_project_out(DIRECTION, embeddings, texts, truth, projects)
    assert [r.project for r in results] == ["a", "b", "c"]
    assert all(r.tp + r.fn == 10 for r in results)
    others = np.array([p != "a" for p in projects])
    without_a = fit_scorer(
        DIRECTION,
        embeddings[others],
        [t for t, o in zip(texts, others, strict=True) if o],
        truth[others],
    )
    assert results[0].threshold == without_a.threshold != scorer.threshold
    assert results[0].precision == 1.0 and results[0].recall >= 0.7
    # A keyword flag is added on top of the score, never instead of it.
    flags = np.zeros(len(texts), dtype=np.bool_)
    flags[1] = True  # a negative of project a
    with_flags = leave_one_project_out(DIRECTION, embeddings, texts, truth, projects, flags)
    assert with_flags[0].fp == results[0].fp + 1
