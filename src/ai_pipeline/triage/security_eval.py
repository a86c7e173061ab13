"""The security bands measured as they would meet a project never seen in training.

Leave one project out: the score's scaling, its calibration and the band thresholds come
from the other projects only; the engine's decision (``security.decide_security``, evidence
and named vulnerabilities included) then bands every report of the project left out.
Fitting uses scikit-learn (``calibration_fit``): training and evaluation only.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from ai_pipeline.domain.models import SecurityBand
from ai_pipeline.triage.calibration import FloatArray, expected_calibration_error
from ai_pipeline.triage.calibration_fit import fit_calibration
from ai_pipeline.triage.security import (
    SecurityScorer,
    band_thresholds,
    decide_security,
    fit_scorer,
)

BoolArray = npt.NDArray[np.bool_]


@dataclass(frozen=True)
class BandCounts:
    """One project's reports per band, and how many of each band were security reports."""

    project: str
    reports: int
    positives: int
    private: int
    private_right: int
    review: int
    review_right: int

    @property
    def private_precision(self) -> float | None:
        return self.private_right / self.private if self.private else None

    @property
    def recall(self) -> float:
        """Share of the security reports in the private or review band."""
        return (self.private_right + self.review_right) / max(self.positives, 1)

    def as_dict(self) -> dict[str, Any]:
        public = self.reports - self.private - self.review
        precision = self.private_precision
        return {
            "project": self.project,
            "reports": self.reports,
            "positives": self.positives,
            "private": self.private,
            "private_precision": None if precision is None else round(precision, 4),
            "review": self.review,
            "review_share": round(self.review / max(self.reports, 1), 4),
            "review_precision": round(self.review_right / max(self.review, 1), 4),
            "public": public,
            "recall_private_review": round(self.recall, 4),
        }


def band_counts(project: str, bands: Sequence[SecurityBand], positive: BoolArray) -> BandCounts:
    private = np.array([b is SecurityBand.PRIVATE for b in bands], dtype=np.bool_)
    review = np.array([b is SecurityBand.REVIEW for b in bands], dtype=np.bool_)
    return BandCounts(
        project,
        reports=len(bands),
        positives=int(positive.sum()),
        private=int(private.sum()),
        private_right=int((private & positive).sum()),
        review=int(review.sum()),
        review_right=int((review & positive).sum()),
    )


@dataclass(frozen=True)
class LeaveOneOut:
    projects: list[BandCounts]
    held_out_confidence: FloatArray  # P(security) per report, fitted without its project
    positive: BoolArray

    @property
    def ece(self) -> float:
        return expected_calibration_error(self.held_out_confidence, self.positive)

    def pooled(self) -> BandCounts:
        return BandCounts(
            "pooled",
            *(sum(getattr(p, name) for p in self.projects) for name in _COUNTS),
        )


_COUNTS = ("reports", "positives", "private", "private_right", "review", "review_right")


def leave_one_project_out(
    direction: npt.NDArray[np.float32],
    embeddings: npt.NDArray[np.float32],
    texts: Sequence[str],
    positive: BoolArray,
    projects: Sequence[str],
    min_precision: float,
    review_recall: float,
) -> LeaveOneOut:
    groups = np.array(projects)
    confidence = np.zeros(len(texts))
    results = []
    for project in sorted(set(projects)):
        train, test = np.flatnonzero(groups != project), np.flatnonzero(groups == project)
        train_texts = [texts[int(i)] for i in train]
        scorer = fit_scorer(direction, embeddings[train], train_texts)
        fitted = fit_calibration(scorer.scores(embeddings[train], train_texts), positive[train])
        bands = band_thresholds(fitted.spec, min_precision, review_recall)
        decisions = [
            decide_security(scorer, fitted.spec, bands, texts[int(i)], embeddings[int(i)])
            for i in test
        ]
        confidence[test] = [d.probability for d in decisions]
        results.append(band_counts(project, [d.band for d in decisions], positive[test]))
    return LeaveOneOut(results, confidence, positive)


def band_shares(
    scorer: SecurityScorer,
    fitted_spec: Any,
    bands: Any,
    embeddings: npt.NDArray[np.float32],
    texts: Sequence[str],
) -> dict[str, float]:
    """Share of ``texts`` in each band (for reports without security labels)."""
    decided = [
        decide_security(scorer, fitted_spec, bands, text, embedding).band
        for text, embedding in zip(texts, embeddings, strict=True)
    ]
    return {
        band.value: round(decided.count(band) / max(len(decided), 1), 4) for band in SecurityBand
    }
