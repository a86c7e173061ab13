"""Calibrated confidences and "act at precision ≥ P" thresholds, numpy only.

A model's raw score (the log-odds of a classifier's answer, a duplicate's similarity, the
security score) is mapped by a :class:`Calibrator` to the probability that the value it
supports is right, fitted on held-out data: isotonic regression (a monotone step curve,
interpolated) or Platt scaling (a logistic curve), whichever scored better in
cross-validation for that field.

A :class:`PrecisionCurve` over held-out raw scores says how often values scoring at least
each threshold were right, how many there were and what share of the right ones they held.
The service turns ``AI_PIPELINE_TRIAGE_MIN_PRECISION`` into a score threshold with it at
start, so a new target needs no retraining. Thresholds are kept on the raw score, not on
the calibrated value: an isotonic curve is flat over long stretches, and a threshold on a
flat stretch would take all of it or none.

Fitting lives in ``calibration_fit`` (scikit-learn, training only); this module is what the
service loads.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]
Method = Literal["isotonic", "platt"]
# A calibrated value is never shown as certain: a held-out set of a few hundred reports
# cannot support 100 % (or 0 %), and a maintainer reads "100 %" as "never wrong".
FLOOR, CEILING = 0.001, 0.99
ECE_BINS = 10
# Fewer held-out values than this at or above a threshold cannot support its precision.
MIN_SUPPORT = 10
# A threshold's precision counts as reached when its one-sided 95 % lower bound (Wilson)
# reaches the target: 9 right of 10 is not "precision 0.9", 450 of 500 nearly is.
WILSON_Z = 1.645
NEVER = math.inf  # the threshold of a field whose target precision was never measured


def wilson_lower_bound(share: float, n: int, z: float = WILSON_Z) -> float:
    """One-sided lower confidence bound of a proportion ``share`` measured on ``n`` values."""
    if n == 0:
        return 0.0
    centre = share + z * z / (2 * n)
    spread = z * math.sqrt(share * (1 - share) / n + z * z / (4 * n * n))
    return (centre - spread) / (1 + z * z / n)


def logit(probability: FloatArray | float) -> FloatArray:
    """Log-odds of a model's probability: what a classifier's calibrator reads (Platt
    scaling is linear in it; the mean of two models' probabilities is bunched below 1)."""
    p = np.clip(np.asarray(probability, dtype=np.float64), 1e-6, 1.0 - 1e-6)
    result: FloatArray = np.log(p / (1.0 - p))
    return result


@dataclass(frozen=True)
class Calibrator:
    """Maps a raw score to a calibrated probability.

    ``isotonic``: ``xs`` (increasing) and ``ys`` (non-decreasing), linearly interpolated and
    constant beyond the ends, as scikit-learn's ``IsotonicRegression(out_of_bounds="clip")``.
    ``platt``: ``sigmoid(a * score + b)``.
    """

    method: Method
    xs: tuple[float, ...] = ()
    ys: tuple[float, ...] = ()
    a: float = 1.0
    b: float = 0.0

    def __post_init__(self) -> None:
        if self.method == "isotonic" and (not self.xs or len(self.xs) != len(self.ys)):
            raise ValueError("an isotonic calibrator needs as many xs as ys, at least one")

    def __call__(self, score: float) -> float:
        return float(self.apply(np.array([score], dtype=np.float64))[0])

    def apply(self, scores: FloatArray) -> FloatArray:
        scores = np.asarray(scores, dtype=np.float64)
        if self.method == "isotonic":
            raw = np.interp(scores, self.xs, self.ys)
        else:
            raw = 0.5 * (1.0 + np.tanh(0.5 * (self.a * scores + self.b)))
        return np.clip(raw, FLOOR, CEILING)

    def to_json(self) -> dict[str, Any]:
        if self.method == "isotonic":
            return {"method": "isotonic", "xs": list(self.xs), "ys": list(self.ys)}
        return {"method": "platt", "a": self.a, "b": self.b}

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> Calibrator:
        method = raw.get("method")
        if method == "isotonic":
            return cls(
                "isotonic", tuple(float(x) for x in raw["xs"]), tuple(float(y) for y in raw["ys"])
            )
        if method == "platt":
            return cls("platt", a=float(raw["a"]), b=float(raw["b"]))
        raise ValueError(f"unknown calibration method {method!r}")


@dataclass(frozen=True)
class PrecisionCurve:
    """Held-out raw scores, summarised at each threshold of a grid: the share of values
    scoring at least it that were right (``precision``), how many there were (``support``)
    of ``total``, and the share of all right values they hold (``recall``)."""

    thresholds: tuple[float, ...]
    precision: tuple[float, ...]
    support: tuple[int, ...]
    recall: tuple[float, ...]
    total: int

    def threshold_for_precision(self, target: float, min_support: int = MIN_SUPPORT) -> float:
        """The lowest threshold at which everything scoring at least it was right ``target``
        of the time (the lower bound of that precision was); :data:`NEVER` when no
        threshold with ``min_support`` values got there (the field then never acts)."""
        for threshold, precision, support in zip(
            self.thresholds, self.precision, self.support, strict=True
        ):
            if support >= min_support and wilson_lower_bound(precision, support) >= target:
                return threshold
        return NEVER

    def threshold_for_recall(self, target: float) -> float:
        """The highest threshold whose values held at least ``target`` of the right ones."""
        for threshold, recall in reversed(list(zip(self.thresholds, self.recall, strict=True))):
            if recall >= target:
                return threshold
        return self.thresholds[0] if self.thresholds else 0.0

    def at(self, threshold: float) -> dict[str, float]:
        """Precision, support, share and recall of the values at or above ``threshold``."""
        if math.isinf(threshold) or not self.thresholds:
            return {"precision": math.nan, "support": 0, "share": 0.0, "recall": 0.0}
        i = int(np.searchsorted(np.array(self.thresholds), threshold - 1e-12))
        if i >= len(self.thresholds):
            return {"precision": math.nan, "support": 0, "share": 0.0, "recall": 0.0}
        return {
            "precision": self.precision[i],
            "support": self.support[i],
            "share": round(self.support[i] / max(self.total, 1), 4),
            "recall": self.recall[i],
        }

    def to_json(self) -> dict[str, Any]:
        return {
            "thresholds": list(self.thresholds),
            "precision": list(self.precision),
            "support": list(self.support),
            "recall": list(self.recall),
            "total": self.total,
        }

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> PrecisionCurve:
        curve = cls(
            tuple(float(v) for v in raw["thresholds"]),
            tuple(float(v) for v in raw["precision"]),
            tuple(int(v) for v in raw["support"]),
            tuple(float(v) for v in raw["recall"]),
            int(raw["total"]),
        )
        if not len(curve.thresholds) == len(curve.precision) == len(curve.support):
            raise ValueError("a precision curve needs one precision and support per threshold")
        return curve


CURVE_POINTS = 200  # thresholds of a curve: quantiles of the held-out scores


def precision_curve(scores: FloatArray, correct: BoolArray) -> PrecisionCurve:
    """The curve of held-out raw ``scores`` and whether each value was right, at quantiles
    of the scores (any scale: log-odds, similarity, a standardised score)."""
    scores = np.asarray(scores, dtype=np.float64)
    correct = np.asarray(correct, dtype=np.bool_)
    if not len(scores):
        return PrecisionCurve((), (), (), (), 0)
    # Quantiles that are scores themselves, floored to 6 decimals (stable across CPUs, and
    # a threshold never lands just above the score it was taken from).
    quantiles = np.quantile(scores, np.linspace(0.0, 1.0, CURVE_POINTS + 1), method="lower")
    grid = sorted({math.floor(float(q) * 1e6) / 1e6 for q in quantiles})
    order = np.sort(scores)
    right_sorted = correct[np.argsort(scores, kind="stable")]
    right_above = np.concatenate([np.cumsum(right_sorted[::-1])[::-1], [0]])
    total_right = max(int(correct.sum()), 1)
    precision, support, recall = [], [], []
    for threshold in grid:
        first = int(np.searchsorted(order, threshold, side="left"))
        n = len(order) - first
        hits = int(right_above[first])
        precision.append(round(hits / n, 4) if n else 0.0)
        support.append(n)
        recall.append(round(hits / total_right, 4))
    return PrecisionCurve(tuple(grid), tuple(precision), tuple(support), tuple(recall), len(scores))


@dataclass(frozen=True)
class FieldCalibration:
    """What the service needs of one field: the calibrator and the held-out curve."""

    calibrator: Calibrator
    curve: PrecisionCurve

    def confidence(self, score: float) -> float:
        return self.calibrator(score)

    def threshold(self, min_precision: float) -> float:
        """The raw score from which values were right at least ``min_precision`` of the time
        on held-out data (:data:`NEVER` when no score reached it)."""
        return self.curve.threshold_for_precision(min_precision)

    def to_json(self) -> dict[str, Any]:
        return {"calibrator": self.calibrator.to_json(), "curve": self.curve.to_json()}

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> FieldCalibration:
        return cls(Calibrator.from_json(raw["calibrator"]), PrecisionCurve.from_json(raw["curve"]))


def expected_calibration_error(
    confidence: FloatArray, correct: BoolArray, bins: int = ECE_BINS
) -> float:
    """ECE: the gap between confidence and accuracy in equal-width bins, weighted by size."""
    table = reliability(confidence, correct, bins)
    n = sum(row.count for row in table)
    return sum(row.count * abs(row.accuracy - row.confidence) for row in table) / max(n, 1)


@dataclass(frozen=True)
class ReliabilityBin:
    lower: float
    upper: float
    count: int
    confidence: float  # mean confidence in the bin
    accuracy: float  # share right in the bin


def reliability(
    confidence: FloatArray, correct: BoolArray, bins: int = ECE_BINS
) -> list[ReliabilityBin]:
    """Non-empty equal-width bins of a reliability diagram."""
    confidence = np.asarray(confidence, dtype=np.float64)
    correct = np.asarray(correct, dtype=np.float64)
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.digitize(confidence, edges[1:-1], right=True), 0, bins - 1)
    table = []
    for b in range(bins):
        members = which == b
        if members.any():
            table.append(
                ReliabilityBin(
                    float(edges[b]),
                    float(edges[b + 1]),
                    int(members.sum()),
                    float(confidence[members].mean()),
                    float(correct[members].mean()),
                )
            )
    return table
