"""Calibration: calibrators, held-out precision curves, thresholds at a precision target,
ECE, and the choice between isotonic and Platt."""

from __future__ import annotations

import math

import numpy as np
import pytest

from ai_pipeline.triage.calibration import (
    NEVER,
    Calibrator,
    FieldCalibration,
    PrecisionCurve,
    expected_calibration_error,
    logit,
    precision_curve,
    reliability,
    wilson_lower_bound,
)
from ai_pipeline.triage.calibration_fit import fit_calibration


def logistic_data(n: int, slope: float, seed: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """Scores whose chance of being right is sigmoid(slope * score)."""
    rng = np.random.default_rng(seed)
    scores = rng.normal(0.0, 2.0, n)
    right = rng.random(n) < 1.0 / (1.0 + np.exp(-slope * scores))
    return scores, right


def test_a_platt_calibrator_is_a_logistic_curve_that_never_says_certain() -> None:
    calibrator = Calibrator("platt", a=2.0, b=-1.0)
    assert calibrator(0.5) == pytest.approx(0.5)
    assert calibrator(100.0) == 0.99 and calibrator(-100.0) == 0.001
    assert np.all(np.diff(calibrator.apply(np.linspace(-3, 3, 50))) >= 0)


def test_an_isotonic_calibrator_interpolates_and_clips_beyond_its_ends() -> None:
    calibrator = Calibrator("isotonic", (0.0, 1.0, 2.0), (0.1, 0.5, 0.9))
    assert calibrator(0.5) == pytest.approx(0.3)
    assert calibrator(-5.0) == pytest.approx(0.1) and calibrator(9.0) == pytest.approx(0.9)
    with pytest.raises(ValueError):
        Calibrator("isotonic", (0.0, 1.0), (0.5,))


def test_calibrations_round_trip_through_json() -> None:
    for calibrator in (
        Calibrator("platt", a=1.5, b=0.25),
        Calibrator("isotonic", (0.0, 1.0), (0.2, 0.8)),
    ):
        assert Calibrator.from_json(calibrator.to_json()) == calibrator
    scores, right = logistic_data(300, 1.0)
    spec = FieldCalibration(Calibrator("platt", a=1.0, b=0.0), precision_curve(scores, right))
    assert FieldCalibration.from_json(spec.to_json()) == spec
    with pytest.raises(ValueError, match="unknown calibration"):
        Calibrator.from_json({"method": "temperature"})


def test_the_curve_counts_values_at_or_above_each_threshold() -> None:
    scores = np.array([0.1, 0.2, 0.3, 0.4])
    right = np.array([False, True, True, True])
    curve = precision_curve(scores, right)
    assert curve.at(0.2) == {"precision": 1.0, "support": 3, "share": 0.75, "recall": 1.0}
    assert curve.at(0.1)["precision"] == 0.75
    assert curve.at(math.inf)["support"] == 0


def test_a_threshold_needs_the_lower_bound_of_its_precision_to_reach_the_target() -> None:
    # 10 of 10 right is not "precision 0.9" yet; 200 of 200 is.
    few = precision_curve(np.arange(10.0), np.ones(10, dtype=bool))
    assert few.threshold_for_precision(0.9) is NEVER
    many = precision_curve(np.arange(400.0), np.arange(400) >= 200)
    threshold = many.threshold_for_precision(0.9)
    assert 175 <= threshold <= 200  # a few wrong ones above it are still within the bound
    assert wilson_lower_bound(many.at(threshold)["precision"], many.at(threshold)["support"]) >= 0.9


def test_a_target_no_threshold_reaches_means_the_field_never_acts() -> None:
    scores, right = np.arange(500.0), np.zeros(500, dtype=bool)
    right[::10] = True  # 10 % right whatever the score
    curve = precision_curve(scores, right)
    assert curve.threshold_for_precision(0.5) is NEVER
    assert math.isinf(FieldCalibration(Calibrator("platt"), curve).threshold(0.5))


def test_the_recall_threshold_keeps_the_share_of_right_values_asked_for() -> None:
    scores = np.arange(100.0)
    right = np.zeros(100, dtype=bool)
    right[[10, 50, 60, 70, 80, 90]] = True
    curve = precision_curve(scores, right)
    threshold = curve.threshold_for_recall(0.5)
    assert (right & (scores >= threshold)).sum() >= 3
    assert threshold >= 60  # the highest threshold that still holds half of them


def test_ece_is_near_zero_when_calibrated_and_large_when_overconfident() -> None:
    rng = np.random.default_rng(5)
    confidence = rng.random(20_000)
    right = rng.random(20_000) < confidence
    assert expected_calibration_error(confidence, right) < 0.01
    assert expected_calibration_error(np.full(1000, 0.95), np.arange(1000) < 600) == pytest.approx(
        0.35
    )
    bins = reliability(confidence, right)
    assert len(bins) == 10 and sum(b.count for b in bins) == 20_000


def test_fitting_calibrates_an_overconfident_score_on_held_out_folds() -> None:
    scores, right = logistic_data(2000, 0.5)
    overconfident = 1.0 / (1.0 + np.exp(-2.0 * scores))  # says sigmoid(2s), is sigmoid(s/2)
    fitted = fit_calibration(logit(overconfident), right)
    assert fitted.calibrator.method in ("platt", "isotonic")
    assert expected_calibration_error(overconfident, right) > 0.1
    assert fitted.ece < 0.03
    assert set(fitted.brier) == {"isotonic", "platt"}
    assert fitted.summary()["n"] == 2000


def test_a_step_shaped_truth_is_left_to_isotonic_and_a_logistic_one_to_platt() -> None:
    rng = np.random.default_rng(11)
    scores = rng.normal(0, 1, 3000)
    step = rng.random(3000) < np.where(scores > 0.5, 0.9, 0.1)
    assert fit_calibration(scores, step).calibrator.method == "isotonic"
    smooth_scores, smooth = logistic_data(3000, 1.0, seed=12)
    assert fit_calibration(smooth_scores, smooth).calibrator.method == "platt"


def test_one_class_calibrates_to_its_share() -> None:
    fitted = fit_calibration(np.arange(50.0), np.zeros(50, dtype=bool))
    assert fitted.calibrator(10.0) == pytest.approx(0.001)
    assert PrecisionCurve((), (), (), (), 0).threshold_for_precision(0.5) is NEVER
