"""Fitting calibrators on held-out scores (scikit-learn: training and evaluation only).

For each field both methods are cross-validated on the calibration data (Brier score, a
proper score that, unlike log loss, stays finite when isotonic says 0 or 1), the better one
is refitted on all of it. Values are rounded to 6 decimals so that retraining on another
CPU (which differs in the 7th digit) gives the same artifact.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ai_pipeline.triage.calibration import (
    BoolArray,
    Calibrator,
    FieldCalibration,
    FloatArray,
    Method,
    PrecisionCurve,
    expected_calibration_error,
    precision_curve,
)

FOLDS = 5
SEED = 42
DIGITS = 6
METHODS: tuple[Method, ...] = ("isotonic", "platt")


@dataclass(frozen=True)
class FittedCalibration:
    """A field's calibrator and what was measured on the data it was fitted from:
    ``held_out`` are cross-fitted calibrated values (each from a calibrator that never saw
    it), hence the ECE; the curve is over the raw scores."""

    calibrator: Calibrator
    held_out: FloatArray
    correct: BoolArray
    curve: PrecisionCurve
    brier: dict[str, float]

    @property
    def spec(self) -> FieldCalibration:
        return FieldCalibration(self.calibrator, self.curve)

    @property
    def ece(self) -> float:
        return float(expected_calibration_error(self.held_out, self.correct))

    def summary(self) -> dict[str, Any]:
        return {
            "method": self.calibrator.method,
            "cross_validated_brier": self.brier,
            "ece_cross_fitted": round(self.ece, 4),
            "n": len(self.held_out),
            "right": int(self.correct.sum()),
        }


def fit_calibration(
    scores: FloatArray, correct: BoolArray, chronological: bool = False
) -> FittedCalibration:
    """Choose isotonic or Platt for ``scores`` (raw) and whether each was right.

    ``chronological``: the rows are in creation order; folds are then contiguous periods,
    so reports filed close together (often about one problem) are never split across the
    fit and the values it is scored on."""
    scores = np.asarray(scores, dtype=np.float64)
    correct = np.asarray(correct, dtype=np.bool_)
    folds = _folds(correct, chronological)
    held_out = {method: np.zeros(len(scores)) for method in METHODS}
    for train, test in folds:
        for method in METHODS:
            held_out[method][test] = fit_calibrator(scores[train], correct[train], method).apply(
                scores[test]
            )
    brier: dict[str, float] = {
        m: round(float(np.mean((held_out[m] - correct) ** 2)), 6) for m in METHODS
    }
    best = min(METHODS, key=lambda m: (brier[m], m != "platt"))  # ties: the smoother curve
    return FittedCalibration(
        calibrator=fit_calibrator(scores, correct, best),
        held_out=held_out[best],
        curve=precision_curve(scores, correct),
        brier=brier,
        correct=correct,
    )


def fit_calibrator(scores: FloatArray, correct: BoolArray, method: Method) -> Calibrator:
    if correct.all() or not correct.any():  # one class: a constant is all there is to learn
        share = float(correct.mean()) if len(correct) else 0.5
        return Calibrator("isotonic", (0.0,), (round(share, DIGITS),))
    if method == "isotonic":
        return _isotonic(scores, correct)
    return _platt(scores, correct)


def _isotonic(scores: FloatArray, correct: BoolArray) -> Calibrator:
    from sklearn.isotonic import IsotonicRegression  # type: ignore[import-untyped, unused-ignore]

    model = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip")
    model.fit(scores, correct.astype(np.float64))
    xs = [round(float(x), DIGITS) for x in model.X_thresholds_]
    ys = [round(float(y), DIGITS) for y in model.y_thresholds_]
    # Rounding may merge neighbouring xs: keep one point per x (np.interp needs increasing).
    points = dict(zip(xs, ys, strict=True))
    return Calibrator("isotonic", tuple(points), tuple(points.values()))


def _platt(scores: FloatArray, correct: BoolArray) -> Calibrator:
    from sklearn.linear_model import LogisticRegression  # type: ignore[import-untyped, unused-ignore]

    # Nearly unregularised: two parameters fitted on hundreds of values.
    model = LogisticRegression(C=1e4, max_iter=1000)
    model.fit(scores.reshape(-1, 1), correct)
    return Calibrator(
        "platt",
        a=round(float(model.coef_[0, 0]), DIGITS),
        b=round(float(model.intercept_[0]), DIGITS),
    )


def _folds(correct: BoolArray, chronological: bool) -> list[tuple[Any, Any]]:
    from sklearn.model_selection import KFold, StratifiedKFold  # type: ignore[import-untyped, unused-ignore]

    n_splits = max(2, min(FOLDS, int(correct.sum()), int((~correct).sum())))
    rows = np.arange(len(correct))
    if chronological:
        return list(KFold(n_splits=n_splits).split(rows))
    splitter = StratifiedKFold(n_splits=n_splits, shuffle=True, random_state=SEED)
    return list(splitter.split(rows, correct))
