"""``ai-pipeline eval``: what a saved artifact does on held-out data, calibration first.

Each task gives its headline figures beside their targets, tables (per project, per band),
and the (confidence, right?) pairs of a reliability diagram. Everything is computed with
the service's own inference code and decisions (``LocalTriageEngine``,
``security.decide_security``, ``DuplicateIndex``) at the operator's targets
(``AI_PIPELINE_TRIAGE_MIN_PRECISION``…); calibrators whose own fit data is the only
labelled data there is (security, duplicates) are refitted out of fold for the ECE.
scikit-learn is used: evaluation only.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ai_pipeline.domain.models import BugReport
from ai_pipeline.triage import duplicate_eval
from ai_pipeline.triage.artifact import Artifact
from ai_pipeline.triage.calibration import (
    BoolArray,
    FloatArray,
    expected_calibration_error,
    logit,
)
from ai_pipeline.triage.calibration_fit import fit_calibration
from ai_pipeline.triage.linear import LinearClassifier
from ai_pipeline.triage.local import LocalTriageEngine
from ai_pipeline.triage.security import band_thresholds
from ai_pipeline.triage.security_eval import band_shares, leave_one_project_out
from ai_pipeline.triage.targets import TriageTargets
from ai_pipeline.triage.tasks import (
    DUPLICATE_FILES,
    HADOOP_REPORTS,
    IssueTypeTask,
    SecurityTask,
    get_task,
    read_csv,
)
from ai_pipeline.triage.train import (
    PREVIOUS_DUPLICATE_THRESHOLD,
    DenseRows,
    best_precision,
    sha256_file,
    split_examples,
)

ECE_TARGET = 0.05
RECALL_AT_5_TARGET = 0.89
SECURITY_RECALL_TARGET = 0.8
NLBSE_PROTOCOL_TARGET = 0.814  # keep or beat the model calibration replaced


@dataclass(frozen=True)
class Figure:
    name: str
    value: Any
    target: str = ""


@dataclass(frozen=True)
class TableData:
    title: str
    columns: list[str]
    rows: list[list[str]]


@dataclass
class Evaluation:
    task: str
    figures: list[Figure] = field(default_factory=list)
    tables: list[TableData] = field(default_factory=list)
    # Reliability diagram curves: name → (confidence, whether each value was right).
    reliability: dict[str, tuple[FloatArray, BoolArray]] = field(default_factory=dict)
    confusion: tuple[list[str], list[list[int]]] | None = None
    recall: dict[int, float] | None = None
    data_matches_artifact: bool = True

    def add(self, name: str, value: Any, target: str = "") -> None:
        self.figures.append(Figure(name, value, target))


def data_matches(artifact: Artifact, data_dir: Path, files: Sequence[str]) -> bool:
    """Whether ``files`` hash as they did when the artifact was trained."""
    recorded = artifact.metadata.get("data_sha256", {})
    return all(recorded.get(f) == sha256_file(data_dir / f) for f in files)


def _share(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


def _fmt(value: float | None, digits: int = 3) -> str:
    return (
        "n/a"
        if value is None or (isinstance(value, float) and math.isnan(value))
        else (f"{value:.{digits}f}")
    )


# ---------------------------------------------------------------------- classifiers


def evaluate_classifier(
    artifact: Artifact, task_name: str, data_dir: Path, targets: TriageTargets, rows: DenseRows
) -> Evaluation:
    """A classifier on the held-out split training used: F1, ECE before and after
    calibration, and what its threshold at the target decides, and how precisely."""
    from sklearn.metrics import accuracy_score, confusion_matrix, f1_score  # type: ignore[import-untyped, unused-ignore]

    task = get_task(task_name)
    validation = split_examples(task.examples(data_dir)).validation
    spec = artifact.classifier(task_name)
    classifier = LinearClassifier(spec)
    texts = [e.text for e in validation]
    truth = [e.label for e in validation]
    dense = rows(texts) if classifier.needs_dense else None
    proba = classifier.predict_proba(classifier.features.transform(texts), dense)
    predicted = [classifier.labels[i] for i in proba.argmax(axis=1)]
    correct = np.array([p == t for p, t in zip(predicted, truth, strict=True)])
    raw = logit(proba.max(axis=1))
    calibration = artifact.calibration(task_name)
    confidence = calibration.calibrator.apply(raw)
    target = targets.precision(task_name)
    threshold = calibration.threshold(target)
    decided = raw >= threshold
    labels = list(task.labels)
    result = Evaluation(
        task_name, data_matches_artifact=data_matches(artifact, data_dir, task.data_files)
    )
    result.add("held-out reports", len(validation))
    result.add(
        "macro-F1",
        round(
            float(f1_score(truth, predicted, labels=labels, average="macro", zero_division=0)), 4
        ),
    )
    result.add("accuracy", round(float(accuracy_score(truth, predicted)), 4))
    cv = spec.scores.get("cross_validation", {}).get("per_repository")
    if cv:
        result.add(
            "macro-F1, NLBSE'24 protocol (5-fold CV, recorded at training)",
            cv["mean"],
            f"≥ {NLBSE_PROTOCOL_TARGET}",
        )
    result.add(
        "ECE (calibrated)",
        round(expected_calibration_error(confidence, correct), 4),
        f"≤ {ECE_TARGET}" if task_name == IssueTypeTask.name else "",
    )
    result.add(
        "ECE (uncalibrated probability)",
        round(expected_calibration_error(proba.max(axis=1), correct), 4),
    )
    result.add("calibration", calibration.calibrator.method)
    result.add(
        f"acts from confidence (precision target {target})",
        "never" if math.isinf(threshold) else round(calibration.confidence(threshold), 4),
    )
    result.add("share decided (labelled)", round(float(decided.mean()), 4))
    result.add(
        "precision of decided values",
        _share(int((decided & correct).sum()), int(decided.sum())),
        f"≥ {target}",
    )
    result.add(
        "share left to a human (suggestion, needs-triage)", round(float(1 - decided.mean()), 4)
    )
    result.confusion = (labels, confusion_matrix(truth, predicted, labels=labels).tolist())
    result.reliability = {
        "calibrated": (confidence, correct),
        "uncalibrated": (proba.max(axis=1), correct),
    }
    return result


def evaluate_levels(
    artifact: Artifact, task_name: str, data_dir: Path, targets: TriageTargets, rows: DenseRows
) -> Evaluation:
    """Priority or severity as the engine sets them (explicit signals, unless the artifact
    carries the team's own model) on every report of the data that carries them, then the
    calibrated model on its held-out split (what a model of the team's own labels does)."""
    task = get_task(task_name)
    reports = _hadoop_reports(data_dir)
    texts = [r.full_text() for r in reports]
    embeddings = rows.embeddings(texts)
    engine = LocalTriageEngine(artifact, _Unused(), targets)
    truth = [task.map_label(raw) for _, raw in _hadoop_levels(data_dir)]
    values = [
        getattr(engine.decide(report, [], embedding), task_name)
        for report, embedding in zip(reports, embeddings, strict=True)
    ]
    set_rows = [(v.value, t) for v, t in zip(values, truth, strict=True) if v is not None]
    right = sum(v == t for v, t in set_rows)
    model = evaluate_classifier(artifact, task_name, data_dir, targets, rows)
    result = Evaluation(task_name, data_matches_artifact=model.data_matches_artifact)
    decides = artifact.classifier(task_name).decides
    source = "the team's own model" if decides else "explicit signals only (no team model)"
    result.add("reports (Hadoop Jira, Priority mapped)", len(reports))
    result.add(f"share set by {source}", _share(len(set_rows), len(reports)))
    result.add("accuracy of those set", _share(right, len(set_rows)))
    result.add("majority-class accuracy, for scale", _majority(truth))
    by_value: dict[str, list[bool]] = {}
    for value, expected in set_rows:
        by_value.setdefault(value, []).append(value == expected)
    result.tables.append(
        TableData(
            f"{task_name} as set, against the maintainers' values",
            ["value set", "reports", "right"],
            [
                [v, str(len(hits)), _fmt(sum(hits) / len(hits))]
                for v, hits in sorted(by_value.items())
            ],
        )
    )
    result.tables.append(
        TableData(
            "the calibrated model, held-out split (what a model of your own labels does:"
            " ai-pipeline train --from)",
            ["metric", "value", "target"],
            [[f.name, str(f.value), f.target] for f in model.figures],
        )
    )
    result.reliability = model.reliability
    result.confusion = model.confusion
    return result


class _Unused:
    """An embedder that must never be called: every embedding is passed in."""

    max_tokens = 128

    def embed(self, texts: Sequence[str]) -> Any:
        raise AssertionError("evaluation passes every embedding in")


def _hadoop_levels(data_dir: Path) -> list[tuple[dict[str, str], str]]:
    return [(row, row["Priority"]) for row in read_csv(data_dir / HADOOP_REPORTS)]


def _hadoop_reports(data_dir: Path) -> list[BugReport]:
    return [
        BugReport(
            id=f"hadoop-{i}",
            title=" ".join(row["Summary"].split())[:300] or "untitled",
            description=row["Description"][:60_000].strip() or row["Summary"],
            reporter="eval@example.com",
        )
        for i, (row, _) in enumerate(_hadoop_levels(data_dir))
    ]


def _majority(values: Sequence[str | None]) -> float | None:
    known = [v for v in values if v is not None]
    if not known:
        return None
    return round(max(known.count(v) for v in set(known)) / len(known), 4)


# ------------------------------------------------------------------------- security


def evaluate_security(
    artifact: Artifact, data_dir: Path, targets: TriageTargets, rows: DenseRows
) -> Evaluation:
    """Each FARSEC project banded by a fit (scaling, calibration, thresholds) on the
    others, and the bands' share of ordinary GitHub issues (NLBSE'24, no security labels)."""
    if artifact.security is None:
        raise ValueError("artifact has no security score")
    task = SecurityTask()
    examples = task.examples(data_dir)
    texts = [e.text for e in examples]
    embeddings = rows.embeddings(texts)
    positive = np.array([e.label == task.labels[1] for e in examples])
    direction = np.asarray(artifact.security.scorer.direction, dtype=np.float32)
    min_precision = targets.precision("security")
    held_out = leave_one_project_out(
        direction,
        embeddings,
        texts,
        positive,
        [e.group for e in examples],
        min_precision,
        targets.security_review_recall,
    )
    result = Evaluation(
        "security", data_matches_artifact=data_matches(artifact, data_dir, task.data_files)
    )
    rows_out = []
    for counts in [*held_out.projects, held_out.pooled()]:
        row = counts.as_dict()
        rows_out.append(
            [
                counts.project,
                str(row["reports"]),
                str(row["positives"]),
                f"{row['private']} ({_fmt(row['private_precision'], 2)})",
                f"{row['review']} ({row['review_share']:.1%}, {_fmt(row['review_precision'], 2)})",
                _fmt(row["recall_private_review"], 2),
            ]
        )
    result.tables.append(
        TableData(
            f"bands per project left out (targets: private precision ≥ {min_precision},"
            f" recall of private + review ≥ {SECURITY_RECALL_TARGET})",
            [
                "project",
                "reports",
                "security",
                "private (precision)",
                "review (share, precision)",
                "recall private+review",
            ],
            rows_out,
        )
    )
    pooled = held_out.pooled()
    result.add("ECE, each project held out", round(held_out.ece, 4), f"≤ {ECE_TARGET}")
    result.add(
        "private band precision, pooled",
        _fmt(pooled.private_precision, 4),
        f"≥ {min_precision}",
    )
    result.add(
        "recall of private + review, pooled", round(pooled.recall, 4), f"≥ {SECURITY_RECALL_TARGET}"
    )
    result.add("review band share, pooled", round(pooled.review / max(pooled.reports, 1), 4))
    ordinary = [e.text for e in IssueTypeTask().examples(data_dir)]
    calibration = artifact.calibration("security")
    bands = band_thresholds(calibration, min_precision, targets.security_review_recall)
    shares = band_shares(
        artifact.security.scorer, calibration, bands, rows.embeddings(ordinary), ordinary
    )
    for band, share in shares.items():
        result.add(f"ordinary GitHub issues (NLBSE'24) in the {band} band", share)
    result.reliability = {"held out by project": (held_out.held_out_confidence, positive)}
    return result


# ----------------------------------------------------------------------- duplicates


def evaluate_duplicates(
    artifact: Artifact, data_dir: Path, targets: TriageTargets, rows: DenseRows, depth: int = 10
) -> Evaluation:
    """SeaMonkey replayed in creation order: recall of the candidate list, the calibration
    of ``duplicate_of`` (refitted out of fold for the ECE), what its threshold flags there
    and on Hadoop (held out: only which reports were closed as duplicates is known)."""
    spec = artifact.duplicates
    pairs = duplicate_eval.load_seamonkey(data_dir)
    run = duplicate_eval.replay(
        pairs,
        spec.vectorizer,
        rows.embeddings([r.text for r in pairs.reports]),
        range(1, depth + 1),
        spec.title_weight,
    )
    calibration = artifact.calibration("duplicate")
    target = targets.precision("duplicate")
    threshold = calibration.threshold(target)
    refitted = fit_calibration(run.top_score, run.top_correct, chronological=True)
    result = Evaluation(
        "duplicates", data_matches_artifact=data_matches(artifact, data_dir, DUPLICATE_FILES)
    )
    result.recall = run.recall
    result.add("SeaMonkey queries (later report of a labelled pair)", run.n_queries)
    result.add(
        "recall@1 / @5 / @10 of the candidate list",
        " / ".join(f"{run.recall[k]:.3f}" for k in (1, 5, 10) if k in run.recall),
        f"recall@5 ≥ {RECALL_AT_5_TARGET}",
    )
    result.add("ECE, creation-order folds", round(refitted.ece, 4), f"≤ {ECE_TARGET}")
    result.add(
        f"duplicate_of acts from similarity (precision target {target})",
        "never: no threshold reached it" if math.isinf(threshold) else round(threshold, 4),
    )
    best = best_precision(calibration.curve)
    if best:
        result.add(
            "best precision any similarity reached (≥ 10 flagged)",
            f"{best['precision']:.3f} from {best['threshold']:.3f} ({best['support']} flagged)",
        )
    hadoop = duplicate_eval.load_hadoop(data_dir)
    other = duplicate_eval.replay(
        hadoop,
        spec.vectorizer,
        rows.embeddings([r.text for r in hadoop.reports]),
        (1,),
        spec.title_weight,
    )
    flag_rows = []
    for name, figures, shown in (
        ("SeaMonkey, at the target", run.flagged(threshold), True),
        ("SeaMonkey, similarity ≥ 0.65 (before)", run.flagged(PREVIOUS_DUPLICATE_THRESHOLD), True),
        ("Hadoop (held out), at the target", other.flagged(threshold), False),
        (
            "Hadoop (held out), similarity ≥ 0.65 (before)",
            other.flagged(PREVIOUS_DUPLICATE_THRESHOLD),
            False,
        ),
    ):
        flag_rows.append(
            [
                name,
                str(figures["flagged"]),
                _fmt(figures["flag_rate"]),
                _fmt(figures["precision_labelled_pairs"]) if shown else "pairs held out",
                _fmt(figures["precision_among_queries"]) if shown else "–",
                _fmt(figures["share_closed_as_duplicate"]),
            ]
        )
    result.tables.append(
        TableData(
            f"what duplicate_of flags (target: precision ≥ {target})",
            [
                "replay",
                "flagged",
                "flag rate",
                "precision, labelled pairs",
                "precision among labelled queries",
                "flagged reports closed as duplicate",
            ],
            flag_rows,
        )
    )
    result.reliability = {"creation-order folds": (refitted.held_out, refitted.correct)}
    return result
