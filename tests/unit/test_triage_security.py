"""The transferable security score, its evidence rules and its three bands."""

from __future__ import annotations

import numpy as np
import pytest

from ai_pipeline.domain.models import SecurityBand
from ai_pipeline.triage.calibration import NEVER, Calibrator, FieldCalibration, precision_curve
from ai_pipeline.triage.embeddings import DIMENSIONS
from ai_pipeline.triage.security import (
    SecurityBands,
    SecurityScorer,
    band_thresholds,
    decide_security,
    fit_scorer,
    security_evidence,
    vocabulary_score,
)
from ai_pipeline.triage.security_eval import leave_one_project_out

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
)
CALIBRATION = FieldCalibration(
    Calibrator("platt", a=1.0, b=-4.0), precision_curve(np.arange(5.0), np.ones(5, bool))
)
BANDS = SecurityBands(private=6.0, review=3.0)


def test_vocabulary_counts_kinds_not_repetitions() -> None:
    assert vocabulary_score("The menu is misaligned") == 0.0
    one_kind = vocabulary_score("password password password password")
    two_kinds = vocabulary_score("password leaked over http without ssl")
    assert 0 < one_kind < two_kinds
    assert one_kind == pytest.approx(np.log1p(4))


def test_scores_add_both_standardised_signals() -> None:
    assert SCORER.score(unit(0.2), "nothing here") == pytest.approx(2.0)
    assert SCORER.score(unit(0.2), "xss") == pytest.approx(2.0 + np.log1p(1))


@pytest.mark.parametrize(
    ("text", "found"),
    [
        ("Fixed in CVE-2024-12345", "cve-2024-12345"),
        ("Comment <script>alert(document.cookie)</script> runs", "<script>alert("),
        ("Search with ' OR '1'='1 returns every row", "' or '1'='1"),
        ("GET /files?name=../../../etc/passwd works", "../../../etc/passwd"),
        ("Logged ${jndi:ldap://x/a}", "${jndi:"),
        ("config has AKIAIOSFODNN7EXAMPLE in it", "a credential (aws access key)"),
    ],
)
def test_evidence_is_what_an_attack_or_a_leak_leaves(text: str, found: str) -> None:
    assert found in security_evidence(text)


@pytest.mark.parametrize(
    "text",
    [
        "ld: cannot find ../../../../lib/libfoo.a",  # a build log's relative paths
        "connect with redis://:changeme@localhost:6379",  # a configuration example
        "set password: secret in application.yml",
        "<script src='bundle.js'></script> fails to load",
        "<!-- Report security vulnerabilities privately: CVE-2020-0001 -->",  # the template
        "We should fix the XSS in the comment box",  # names a class of bug: review, not evidence
    ],
)
def test_talk_examples_and_templates_are_not_evidence(text: str) -> None:
    assert security_evidence(text) == []


def test_bands_come_from_evidence_names_and_the_score() -> None:
    def band(text: str, x: float) -> SecurityBand:
        return decide_security(SCORER, CALIBRATION, BANDS, text, unit(x)).band

    assert band("Menu misaligned", 0.0) is SecurityBand.PUBLIC
    assert band("Menu misaligned", 0.35) is SecurityBand.REVIEW  # score 3.5
    assert band("Menu misaligned", 0.7) is SecurityBand.PRIVATE  # score 7
    assert band("CVE-2024-1234 in the parser", -0.5) is SecurityBand.PRIVATE
    assert band("SQL injection in search", -0.5) is SecurityBand.REVIEW
    # Without an embedding the semantic half is neutral, not a crash.
    assert decide_security(SCORER, CALIBRATION, BANDS, "Menu", None).band is SecurityBand.PUBLIC


def test_each_band_says_why_and_its_confidence_is_calibrated() -> None:
    named = decide_security(SCORER, CALIBRATION, BANDS, "SQL injection in search", unit(0.0))
    assert named.reason == "mentions 'sql injection' → security review"
    evidence = decide_security(SCORER, CALIBRATION, BANDS, "see CVE-2024-1234", unit(0.0))
    assert evidence.reason == "'cve-2024-1234' → private"
    # A rule decided: no measured odds to show, only the reason.
    assert named.confidence is None and evidence.confidence is None
    assert 0.0 < evidence.probability < 0.5  # the score alone would have said public
    public = decide_security(SCORER, CALIBRATION, BANDS, "Menu misaligned", unit(0.0))
    assert public.confidence == pytest.approx(1.0 - public.probability)
    text = "the password shows in the logs"
    worded = decide_security(SCORER, CALIBRATION, BANDS, text, unit(0.3))
    assert worded.band is SecurityBand.REVIEW
    assert worded.reason == "security wording: 'password', 'in the logs' → security review"
    score = SCORER.score(unit(0.3), text)
    assert worded.confidence == pytest.approx(CALIBRATION.confidence(score), abs=1e-4)


def test_band_thresholds_follow_the_targets_and_review_starts_below_private() -> None:
    scores = np.arange(1000.0)
    # The top 50 are all security reports; from 500 up, one in five is.
    positive = (scores >= 950) | ((scores >= 500) & (scores % 5 == 0))
    spec = FieldCalibration(Calibrator("platt"), precision_curve(scores, positive))
    bands = band_thresholds(spec, min_precision=0.8, review_recall=0.8)
    assert 900 <= bands.private <= 950
    assert 600 <= bands.review <= 700
    # A review target the private band already meets leaves no review band.
    assert band_thresholds(spec, 0.8, review_recall=0.3).review == bands.private
    unreachable = band_thresholds(spec, min_precision=0.999, review_recall=0.8)
    assert unreachable.private is NEVER and unreachable.review == bands.review


def test_leaving_a_project_out_never_fits_on_it() -> None:
    rng = np.random.default_rng(7)
    texts, vectors, positive, projects = [], [], [], []
    for project, shift in (("a", 0.0), ("b", 0.0), ("c", 0.3)):
        for i in range(200):
            hot = i % 10 == 0
            texts.append("attacker bypasses authentication" if hot else "button misaligned")
            vectors.append(unit(float(np.clip(0.5 * hot + shift + rng.normal(0, 0.05), -1, 1))))
            positive.append(hot)
            projects.append(project)
    embeddings, truth = np.stack(vectors), np.array(positive)
    result = leave_one_project_out(DIRECTION, embeddings, texts, truth, projects, 0.8, 0.8)
    assert [p.project for p in result.projects] == ["a", "b", "c"]
    assert all(p.positives == 20 and p.reports == 200 for p in result.projects)
    # Separable data: each project's security reports land in the upper bands, precisely.
    assert all(p.recall == 1.0 for p in result.projects)
    assert result.projects[0].private_precision == 1.0
    # Project c is shifted: fitted without it, its ordinary reports score higher than any
    # seen in fitting, so they stop being public (the bands do not transfer blindly).
    assert result.projects[2].review + result.projects[2].private > 20
    assert result.pooled().reports == 600 and 0.0 <= result.ece <= 1.0
    scaled = fit_scorer(DIRECTION, embeddings, texts)
    assert scaled.similarity_std > 0 and scaled.vocabulary_std > 0


def test_a_published_cve_alone_files_privately_but_is_not_urgent() -> None:
    upgrade = decide_security(SCORER, CALIBRATION, BANDS, "Bump jackson for CVE-2020-1234", unit(0))
    assert upgrade.band is SecurityBand.PRIVATE and not upgrade.urgent
    payload = "Logged ${jndi:ldap://x/a} as in CVE-2021-44228"
    assert decide_security(SCORER, CALIBRATION, BANDS, payload, unit(0)).urgent
    assert decide_security(SCORER, CALIBRATION, BANDS, "Menu", unit(0.7)).urgent  # the score
    assert not decide_security(SCORER, CALIBRATION, BANDS, "XSS here", unit(0)).urgent
