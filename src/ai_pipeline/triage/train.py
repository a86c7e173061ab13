"""Training and evaluation of the triage artifact (scikit-learn: train/eval time only).

Three separate steps: :func:`fit` a task on its training split, :func:`evaluate` it on the
held-out split, :func:`save` the resulting artifact. :func:`train` runs them for every task
plus duplicate search. Everything is seeded and single-threaded, so the same data gives the
same artifact bytes.

Run: ``python -m ai_pipeline.triage.train --data-dir ../shared/data``
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import math
import platform
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from ai_pipeline.triage import duplicate_eval
from ai_pipeline.triage.artifact import (
    Artifact,
    ClassifierSpec,
    DenseMemberSpec,
    DuplicateSpec,
    FloatArray,
    SecuritySpec,
    VectorizerSpec,
    default_model_dir,
    save_artifact,
)
from ai_pipeline.triage.calibration import (
    MIN_SUPPORT,
    FieldCalibration,
    PrecisionCurve,
    expected_calibration_error,
    logit,
)
from ai_pipeline.triage.calibration_fit import FittedCalibration, fit_calibration
from ai_pipeline.triage.duplicates import LEXICAL_WEIGHT
from ai_pipeline.triage.embeddings import DEFAULT_MAX_TOKENS, DIMENSIONS, report_text
from ai_pipeline.triage.export import UserExport
from ai_pipeline.triage.features import MAX_CHARS
from ai_pipeline.triage.linear import ANALYZERS
from ai_pipeline.triage.security import (
    PROTOTYPES,
    band_thresholds,
    decide_security,
    fit_scorer,
    prototype_direction,
)
from ai_pipeline.triage.security_eval import band_shares, leave_one_project_out
from ai_pipeline.triage.signals import explicit_levels
from ai_pipeline.triage.targets import (
    DEFAULT_MIN_PRECISION,
    DEFAULT_MIN_PRECISION_SECURITY,
    DEFAULT_SECURITY_REVIEW_RECALL,
)
from ai_pipeline.triage.tasks import (
    DUPLICATE_FILES,
    TASKS,
    Example,
    IssueTypeTask,
    SecurityTask,
    Task,
    get_task,
)
from ai_pipeline.triage.type_features import CUES_VERSION, dense_matrix

SEED = 42
VALIDATION_FRACTION = 0.2
CV_FOLDS = 5
# Out-of-fold predictions that calibrate a classifier: models fitted on 90 % of the
# training split are closer to the final one than 80 % models (held-out ECE of the type
# model 0.043 against 0.051).
CALIBRATION_FOLDS = 10
MAX_ITER = 5000
DUPLICATE_MIN_DF = 2
DUPLICATE_TITLE_WEIGHT = 0.5  # title and body count equally (grid 0.3/0.5/0.7 on SeaMonkey)
# The NLBSE protocol figures are cross-validated: 5 folds per repository, repeated twice.
PROTOCOL_REPEATS = 2
MIN_EXPORT_DUPLICATE_QUERIES = 10  # fewer labelled pairs cannot place a threshold
# The similarity duplicate_of fired at before confidences were calibrated: its figures are
# kept beside the calibrated ones, to compare.
PREVIOUS_DUPLICATE_THRESHOLD = 0.65
TERM_CACHE = 4096  # texts whose analyzed terms are memoised while one task trains

Progress = Callable[[str], None]
BoolArray = npt.NDArray[np.bool_]
Embed = Callable[[Sequence[str]], npt.NDArray[np.float32]]


class DenseRows:
    """Dense rows (embedding, then cues) of report texts; each text is embedded once.

    What is embedded is ``report_text(text)``, as the triage agent and the engine do.
    ``embed`` defaults to the service's :class:`Embedder` (one thread, 128 tokens), built on
    first use; tests may pass a memoised one. ``progress`` is told how many texts the
    default embedder has just embedded (a progress bar).
    """

    def __init__(
        self, embed: Embed | None = None, progress: Callable[[int], None] | None = None
    ) -> None:
        self._embed = embed
        self._progress = progress
        self._cache: dict[str, npt.NDArray[np.float32]] = {}

    def __call__(self, texts: Sequence[str]) -> FloatArray:
        return dense_matrix(self.embeddings(texts), texts)

    def embeddings(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        """The unit embeddings of ``report_text(text)`` for each text, one row each."""
        missing = sorted({t for t in texts if t not in self._cache})
        if missing:
            vectors = self._embedder()([report_text(t) for t in missing])
            self._cache.update(zip(missing, vectors, strict=True))
        if not texts:
            return np.zeros((0, DIMENSIONS), dtype=np.float32)
        return np.stack([self._cache[t] for t in texts])

    def raw(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        """Embeddings of the texts exactly as given (no ``report_text``), uncached."""
        return np.asarray(self._embedder()(list(texts)), dtype=np.float32)

    def _embedder(self) -> Embed:
        if self._embed is None:
            from ai_pipeline.triage.embeddings import Embedder

            embedder = Embedder(max_tokens=DEFAULT_MAX_TOKENS, threads=1)
            self._embed = functools.partial(embedder.embed, progress=self._progress)
        return self._embed


# ------------------------------------------------------------------------------ splitting


@dataclass(frozen=True)
class Split:
    train: list[Example]
    validation: list[Example]


def split_examples(examples: Sequence[Example], seed: int = SEED) -> Split:
    """Stratified (by group and label) held-out split; the same for training and ``eval``.

    A team's small export may have a group with a single example of a label: those
    splits are stratified by label alone."""
    from collections import Counter

    from sklearn.model_selection import train_test_split  # type: ignore[import-untyped, unused-ignore]

    strata = [f"{e.group}|{e.label}" for e in examples]
    if min(Counter(strata).values()) < 2:
        strata = [e.label for e in examples]
    train_idx, val_idx = train_test_split(
        np.arange(len(examples)),
        test_size=VALIDATION_FRACTION,
        random_state=seed,
        stratify=strata,
    )
    return Split(
        train=[examples[i] for i in sorted(train_idx)],
        validation=[examples[i] for i in sorted(val_idx)],
    )


# ------------------------------------------------------------------------------------ fit


@dataclass
class FittedTask:
    """A fitted scikit-learn pipeline and the calibration of its confidence (fitted on its
    out-of-fold predictions)."""

    task: Task
    pipeline: Any  # sklearn.pipeline.Pipeline(TfidfVectorizer, LogisticRegression)
    calibration: FittedCalibration
    n_train: int
    # Tasks with ``dense_C``: LogisticRegression over ``dense`` rows, probabilities averaged.
    member: Any = None
    dense: DenseRows | None = None

    @property
    def classes(self) -> tuple[str, ...]:
        return tuple(str(c) for c in self.pipeline[-1].classes_)

    def predict_proba(self, texts: Sequence[str]) -> FloatArray:
        return _models_proba(self.pipeline, self.member, self.dense, texts)

    def predict(self, texts: Sequence[str]) -> list[str]:
        classes = self.classes
        return [classes[i] for i in np.argmax(self.predict_proba(texts), axis=1)]


def _models_proba(
    pipeline: Any, member: Any, dense: DenseRows | None, texts: Sequence[str]
) -> FloatArray:
    proba: FloatArray = pipeline.predict_proba(list(texts))
    if member is None or dense is None:
        return proba
    if list(member.classes_) != list(pipeline[-1].classes_):
        raise ValueError("the dense member's classes differ from the tf-idf model's")
    mean: FloatArray = (proba + member.predict_proba(dense(texts))) / 2.0
    return mean


def make_pipeline(task: Task, analyzer: Callable[[str], list[str]] | None = None) -> Any:
    """A fresh ``TfidfVectorizer`` + ``LogisticRegression`` with the task's settings.

    ``analyzer`` may replace the task's analyzer by a memoised copy of it (same terms).
    """
    from sklearn.feature_extraction.text import TfidfVectorizer  # type: ignore[import-untyped, unused-ignore]
    from sklearn.linear_model import LogisticRegression  # type: ignore[import-untyped, unused-ignore]
    from sklearn.pipeline import Pipeline  # type: ignore[import-untyped, unused-ignore]

    settings = task.settings
    vectorizer = TfidfVectorizer(
        analyzer=analyzer or ANALYZERS[settings.analyzer],
        min_df=settings.min_df,
        sublinear_tf=True,
        norm="l2",
        dtype=np.float64,
    )
    model = LogisticRegression(
        C=settings.C,
        class_weight=settings.class_weight,
        max_iter=MAX_ITER,
        random_state=SEED,
    )
    return Pipeline([("tfidf", vectorizer), ("model", model)])


def memoised_analyzer(task: Task) -> Callable[[str], list[str]]:
    """The task's analyzer, memoising the terms of recent texts (cross-validation refits the
    vectorizer on the same texts many times)."""
    return functools.lru_cache(maxsize=TERM_CACHE)(ANALYZERS[task.settings.analyzer])


def fit_models(
    task: Task,
    texts: Sequence[str],
    labels: Sequence[str],
    dense: DenseRows | None = None,
    sample_weight: FloatArray | None = None,
    analyzer: Callable[[str], list[str]] | None = None,
) -> tuple[Any, Any]:
    """The task's tf-idf pipeline and, with ``dense_C``, its dense member, fitted on texts."""
    from sklearn.linear_model import LogisticRegression  # type: ignore[import-untyped, unused-ignore]

    with _single_thread():
        pipeline = make_pipeline(task, analyzer).fit(
            list(texts), list(labels), model__sample_weight=sample_weight
        )
        member = None
        if task.dense_C is not None:
            if dense is None:
                raise ValueError(f"task {task.name!r} needs dense rows (embeddings)")
            member = LogisticRegression(C=task.dense_C, max_iter=MAX_ITER, random_state=SEED)
            member.fit(dense(texts), list(labels), sample_weight=sample_weight)
    return pipeline, member


def fit(task: Task, train: Sequence[Example], dense: DenseRows | None = None) -> FittedTask:
    """Fit the task's models on ``train``; thresholds come from out-of-fold predictions."""
    from sklearn.model_selection import StratifiedKFold  # type: ignore[import-untyped, unused-ignore]

    texts = [e.text for e in train]
    labels = [e.label for e in train]
    if task.dense_C is not None and dense is None:
        dense = DenseRows()
    analyzer = memoised_analyzer(task)
    folds = StratifiedKFold(n_splits=CALIBRATION_FOLDS, shuffle=True, random_state=SEED)
    oof: FloatArray | None = None
    for fold_train, fold_test in folds.split(texts, labels):
        pipeline, member = fit_models(
            task,
            [texts[i] for i in fold_train],
            [labels[i] for i in fold_train],
            dense,
            analyzer=analyzer,
        )
        proba = _models_proba(pipeline, member, dense, [texts[i] for i in fold_test])
        if oof is None:
            oof = np.zeros((len(texts), proba.shape[1]))
        oof[fold_test] = proba
    assert oof is not None
    pipeline, member = fit_models(task, texts, labels, dense, analyzer=analyzer)
    classes = tuple(str(c) for c in pipeline[-1].classes_)
    calibration = fit_calibration(*top_label(oof, classes, labels))
    return FittedTask(task, pipeline, calibration, len(train), member, dense)


def _single_thread() -> Any:
    # One BLAS thread: the box is shared, and reductions then sum in a fixed order.
    from threadpoolctl import threadpool_limits  # type: ignore[import-untyped, unused-ignore]

    return threadpool_limits(limits=1)


def top_label(
    proba: FloatArray, classes: Sequence[str], labels: Sequence[str]
) -> tuple[FloatArray, BoolArray]:
    """The log-odds of the model's answer (its top probability) and whether it was right:
    what a field's calibration maps (one curve for every label, as the answer is shown)."""
    best = proba.argmax(axis=1)
    correct = np.array([classes[i] == y for i, y in zip(best, labels, strict=True)], dtype=bool)
    return logit(proba.max(axis=1)), correct


# ------------------------------------------------------------------------------- evaluate


def evaluate(fitted: FittedTask, validation: Sequence[Example]) -> dict[str, Any]:
    """Held-out scores of a fitted task (JSON-ready), its calibration's included."""
    scores = _evaluate_multiclass(fitted, validation)
    proba = fitted.predict_proba([e.text for e in validation])
    raw, correct = top_label(proba, fitted.classes, [e.label for e in validation])
    scores["calibration"] = calibration_figures(
        fitted.calibration, raw, correct, DEFAULT_MIN_PRECISION
    )
    return scores


def calibration_figures(
    fitted: FittedCalibration,
    raw: FloatArray,
    correct: BoolArray,
    min_precision: float,
) -> dict[str, Any]:
    """A classifier's calibration on held-out values (``raw``: log-odds of its answer): ECE
    before and after, and what the threshold for ``min_precision`` (chosen on the
    calibration data) does on them."""
    calibrated = fitted.calibrator.apply(raw)
    threshold = fitted.spec.threshold(min_precision)
    decided = raw >= threshold
    uncalibrated = 1.0 / (1.0 + np.exp(-raw))
    return {
        **fitted.summary(),
        "held_out": len(raw),
        "ece_uncalibrated": _r(expected_calibration_error(uncalibrated, correct)),
        "ece": _r(expected_calibration_error(calibrated, correct)),
        "min_precision": min_precision,
        "threshold": None if math.isinf(threshold) else threshold,
        "decided_share": _r(float(decided.mean())) if len(raw) else 0.0,
        "decided_precision": _r(float(correct[decided].mean())) if decided.any() else None,
    }


def _evaluate_multiclass(fitted: FittedTask, validation: Sequence[Example]) -> dict[str, Any]:
    from sklearn.metrics import accuracy_score, f1_score  # type: ignore[import-untyped, unused-ignore]

    truth = [e.label for e in validation]
    predicted = fitted.predict([e.text for e in validation])
    labels = list(fitted.task.labels)
    per_label = f1_score(truth, predicted, labels=labels, average=None, zero_division=0)
    scores: dict[str, Any] = {
        "n_train": fitted.n_train,
        "n_validation": len(validation),
        "macro_f1": _r(f1_score(truth, predicted, labels=labels, average="macro", zero_division=0)),
        "accuracy": _r(accuracy_score(truth, predicted)),
        "f1_per_label": {label: _r(v) for label, v in zip(labels, per_label, strict=True)},
        "majority_baseline_accuracy": _r(_majority_share(truth)),
    }
    if len({e.group for e in validation}) > 1:
        scores["macro_f1_per_group"] = _macro_f1_per_group(validation, predicted, labels)
    return scores


def _macro_f1_per_group(
    validation: Sequence[Example], predicted: Sequence[str], labels: list[str]
) -> dict[str, float]:
    from sklearn.metrics import f1_score  # type: ignore[import-untyped, unused-ignore]

    scores = {}
    for group in sorted({e.group for e in validation}):
        rows = [i for i, e in enumerate(validation) if e.group == group]
        truth = [validation[i].label for i in rows]
        scores[group] = _r(
            f1_score(
                truth, [predicted[i] for i in rows], labels=labels, average="macro", zero_division=0
            )
        )
    scores["mean"] = _r(float(np.mean(list(scores.values()))))
    return scores


def evaluate_per_group_models(
    task: Task, split: Split, dense: DenseRows | None = None
) -> dict[str, float]:
    """The NLBSE'24 protocol on the held-out split: one classifier per repository, macro-F1
    per repository, averaged. Each is trained on its repository's training rows plus (at
    ``other_group_weight``) the other repositories' training rows, scored on its held-out
    rows."""
    from sklearn.metrics import f1_score  # type: ignore[import-untyped, unused-ignore]

    analyzer = memoised_analyzer(task)
    scores = {}
    for group in sorted({e.group for e in split.train}):
        train, weights = _with_other_groups(task, split.train, group)
        validation = [e for e in split.validation if e.group == group]
        predicted = _fit_predict(task, train, weights, validation, dense, analyzer)
        truth = [e.label for e in validation]
        scores[group] = _r(
            f1_score(truth, predicted, labels=list(task.labels), average="macro", zero_division=0)
        )
    scores["mean"] = _r(float(np.mean(list(scores.values()))))
    return scores


def cross_validate_per_group(
    task: Task,
    examples: Sequence[Example],
    dense: DenseRows | None = None,
    repeats: int = PROTOCOL_REPEATS,
) -> dict[str, Any]:
    """Both NLBSE figures by repeated stratified 5-fold cross-validation on all examples.

    ``per_repository``: the protocol. For each repository, 5 folds of its own issues; a
    fold's model trains on the other four folds plus every other repository's issues at
    ``other_group_weight``. ``generic``: one model on all repositories (5 folds stratified
    by repository and label, weight 1), scored per repository. Mean ± std are over the
    ``repeats × 5`` fold-level means of the five repositories.
    """
    from sklearn.metrics import f1_score  # type: ignore[import-untyped, unused-ignore]
    from sklearn.model_selection import StratifiedKFold  # type: ignore[import-untyped, unused-ignore]

    analyzer = memoised_analyzer(task)
    labels = list(task.labels)
    groups = sorted({e.group for e in examples})
    protocol = np.zeros((repeats, CV_FOLDS, len(groups)))
    generic = np.zeros((repeats, CV_FOLDS, len(groups)))
    for repeat in range(repeats):
        for g, group in enumerate(groups):
            own = [e for e in examples if e.group == group]
            others = [e for e in examples if e.group != group]
            folds = StratifiedKFold(n_splits=CV_FOLDS, shuffle=True, random_state=SEED + repeat)
            for k, (tr, te) in enumerate(folds.split(own, [e.label for e in own])):
                train = [own[i] for i in tr] + others
                weights = np.concatenate(
                    [np.ones(len(tr)), np.full(len(others), task.other_group_weight)]
                )
                test = [own[i] for i in te]
                predicted = _fit_predict(task, train, weights, test, dense, analyzer)
                protocol[repeat, k, g] = f1_score(
                    [e.label for e in test],
                    predicted,
                    labels=labels,
                    average="macro",
                    zero_division=0,
                )
        folds = StratifiedKFold(n_splits=CV_FOLDS, shuffle=True, random_state=SEED + repeat)
        strata = [f"{e.group}|{e.label}" for e in examples]
        for k, (tr, te) in enumerate(folds.split(examples, strata)):
            train = [examples[i] for i in tr]
            test = [examples[i] for i in te]
            predicted = _fit_predict(task, train, np.ones(len(train)), test, dense, analyzer)
            for g, group in enumerate(groups):
                rows = [i for i, e in enumerate(test) if e.group == group]
                generic[repeat, k, g] = f1_score(
                    [test[i].label for i in rows],
                    [predicted[i] for i in rows],
                    labels=labels,
                    average="macro",
                    zero_division=0,
                )
    return {
        "method": f"stratified {CV_FOLDS}-fold x {repeats} per repository; other "
        f"repositories at sample weight {task.other_group_weight}",
        "per_repository": _cv_summary(protocol, groups),
        "generic": _cv_summary(generic, groups),
    }


def _cv_summary(scores: FloatArray, groups: list[str]) -> dict[str, Any]:
    fold_means = scores.mean(axis=2).ravel()
    per_group = scores.mean(axis=(0, 1))
    return {
        "mean": _r(float(fold_means.mean())),
        "std": _r(float(fold_means.std())),
        **{group: _r(float(v)) for group, v in zip(groups, per_group, strict=True)},
    }


def _with_other_groups(
    task: Task, examples: Sequence[Example], group: str
) -> tuple[list[Example], FloatArray]:
    own = [e for e in examples if e.group == group]
    others = [e for e in examples if e.group != group] if task.other_group_weight > 0 else []
    weights = np.concatenate([np.ones(len(own)), np.full(len(others), task.other_group_weight)])
    return own + others, weights


def _fit_predict(
    task: Task,
    train: Sequence[Example],
    weights: FloatArray,
    test: Sequence[Example],
    dense: DenseRows | None,
    analyzer: Callable[[str], list[str]],
) -> list[str]:
    pipeline, member = fit_models(
        task, [e.text for e in train], [e.label for e in train], dense, weights, analyzer
    )
    proba = _models_proba(pipeline, member, dense, [e.text for e in test])
    classes = [str(c) for c in pipeline[-1].classes_]
    return [classes[i] for i in np.argmax(proba, axis=1)]


def _majority_share(labels: Sequence[str]) -> float:
    _, counts = np.unique(np.array(labels), return_counts=True)
    return float(counts.max() / counts.sum())


def _r(value: float) -> float:
    """Scores are reported, not used for predictions: 4 decimals keep the manifest readable."""
    return round(float(value), 4)


# ------------------------------------------------------------------------------ to artifact


def vectorizer_spec(vectorizer: Any, analyzer: str) -> VectorizerSpec:
    """The artifact form of a fitted ``TfidfVectorizer`` (vocabulary in column order)."""
    vocabulary = vectorizer.vocabulary_
    terms = sorted(vocabulary, key=vocabulary.__getitem__)
    return VectorizerSpec(
        analyzer="bigram" if analyzer == "bigram" else "unigram",
        vocabulary=tuple(terms),
        idf=np.asarray(vectorizer.idf_, dtype=np.float64),
        sublinear_tf=bool(vectorizer.sublinear_tf),
    )


def classifier_spec(
    fitted: FittedTask, scores: dict[str, Any], decides: bool = True
) -> ClassifierSpec:
    vectorizer, model = fitted.pipeline[0], fitted.pipeline[-1]
    return ClassifierSpec(
        name=fitted.task.name,
        labels=fitted.classes,
        vectorizer=vectorizer_spec(vectorizer, fitted.task.settings.analyzer),
        coef=np.asarray(model.coef_, dtype=np.float32),
        intercept=np.asarray(model.intercept_, dtype=np.float32),
        link="sigmoid" if len(fitted.classes) == 2 else "softmax",
        scores=scores,
        members=() if fitted.member is None else (dense_member_spec(fitted),),
        decides=decides,
    )


def dense_member_spec(fitted: FittedTask) -> DenseMemberSpec:
    member = fitted.member
    if tuple(str(c) for c in member.classes_) != fitted.classes:
        raise ValueError("the dense member's classes differ from the tf-idf model's")
    return DenseMemberSpec(
        coef=np.asarray(member.coef_, dtype=np.float32),
        intercept=np.asarray(member.intercept_, dtype=np.float32),
        embedding_dimensions=DIMENSIONS,
        embedding_max_tokens=DEFAULT_MAX_TOKENS,
        cues_version=CUES_VERSION,
    )


# ----------------------------------------------------------------------------- duplicates


def fit_duplicate_vectorizer(texts: Sequence[str]) -> VectorizerSpec:
    """Unigram idf over unlabelled report texts (no labels are used)."""
    from sklearn.feature_extraction.text import TfidfVectorizer  # type: ignore[import-untyped, unused-ignore]

    vectorizer = TfidfVectorizer(
        analyzer=ANALYZERS["unigram"], min_df=DUPLICATE_MIN_DF, sublinear_tf=True
    ).fit(texts)
    return vectorizer_spec(vectorizer, "unigram")


# ---------------------------------------------------------------------------------- train


def train(
    data_dir: Path,
    progress: Progress | None = None,
    embed: Embed | None = None,
    protocol_repeats: int = PROTOCOL_REPEATS,
) -> Artifact:
    """Fit and evaluate every task and duplicate search; return the artifact (not saved).

    ``embed`` (texts → unit rows) defaults to the service's embedder; ``protocol_repeats``
    is the number of repeats of the per-repository cross-validation (0: skip it).
    """
    report = progress or (lambda _step: None)
    rows = DenseRows(embed)  # one cache: a text shared by tasks is embedded once
    classifiers: dict[str, ClassifierSpec] = {}
    calibrations: dict[str, FieldCalibration] = {}
    corpus: dict[str, str] = {}  # text by identity, so shared sources count once for idf
    security: SecuritySpec | None = None
    for name in sorted(TASKS):
        task = get_task(name)
        examples = task.examples(data_dir)
        corpus.update((e.text, e.text) for e in examples)
        if name == SecurityTask.name:
            ordinary = [e.text for e in get_task(IssueTypeTask.name).examples(data_dir)]
            security, calibrations[name] = fit_security(examples, rows, ordinary)
            report(f"task {name}")
            continue
        split = split_examples(examples)
        dense = rows if task.dense_C is not None else None
        fitted = fit(task, split.train, dense)
        scores = evaluate(fitted, split.validation)
        if name == "type":
            scores["per_repository_models"] = evaluate_per_group_models(task, split, dense)
            if protocol_repeats > 0:
                scores["cross_validation"] = cross_validate_per_group(
                    task, examples, dense, protocol_repeats
                )
        classifiers[name] = classifier_spec(fitted, scores, task.decides_from_shipped_data)
        calibrations[name] = fitted.calibration.spec
        report(f"task {name}")
    pairs = duplicate_eval.load_seamonkey(data_dir)
    held_out = duplicate_eval.load_hadoop(data_dir)
    duplicates, calibrations["duplicate"] = fit_duplicates(sorted(corpus), pairs, rows, held_out)
    if security is not None:
        levels = explicit_level_scores(held_out, rows, security, calibrations["security"])
        for name, figures in levels.items():
            classifiers[name].scores["explicit_signals"] = figures
    report("duplicates")
    return Artifact(classifiers, duplicates, training_metadata(data_dir), security, calibrations)


def explicit_level_scores(
    hadoop: duplicate_eval.ChronologicalPairs,
    rows: DenseRows,
    security: SecuritySpec,
    calibration: FieldCalibration,
) -> dict[str, dict[str, Any]]:
    """What the service sets for priority and severity without a team model (explicit
    signals and the security band, ``signals.py``) on every Hadoop report, against the
    Priority its maintainers gave (mapped as the tasks map it)."""
    bands = band_thresholds(
        calibration, DEFAULT_MIN_PRECISION_SECURITY, DEFAULT_SECURITY_REVIEW_RECALL
    )
    texts = [r.text[:MAX_CHARS] for r in hadoop.reports]
    embeddings = rows.embeddings([r.text for r in hadoop.reports])
    found = [
        explicit_levels(
            r.title,
            text,
            decide_security(security.scorer, calibration, bands, text, embedding).urgent,
        )
        for r, text, embedding in zip(hadoop.reports, texts, embeddings, strict=True)
    ]
    figures = {}
    for name in ("priority", "severity"):
        task = get_task(name)
        pairs = [
            (getattr(levels, name).value, task.map_label(raw))
            for levels, raw in zip(found, hadoop.priorities, strict=True)
            if getattr(levels, name) is not None
        ]
        figures[name] = {
            "data": "Hadoop Jira, every report (Priority mapped as the task maps it)",
            "reports": len(found),
            "share_set": _r(len(pairs) / max(len(found), 1)),
            "accuracy_of_set": _r(sum(v == t for v, t in pairs) / len(pairs)) if pairs else None,
        }
    return figures


def train_from_export(
    export: UserExport,
    base: Artifact,
    progress: Progress | None = None,
    embed: Embed | None = None,
) -> Artifact:
    """Refit what a team's export labels (``triage.export``); keep the rest of ``base``.

    Classifiers are refit on the export's examples of their task (and then decide, priority
    and severity included: they are the team's own labels), the security score on its
    ``security`` column, duplicate search (idf and calibration) on its ``duplicate_of`` pairs
    replayed by ``created_at``. Tasks the export does not label keep ``base``'s model.
    """
    report = progress or (lambda _step: None)
    rows = DenseRows(embed)
    classifiers = dict(base.classifiers)
    calibrations = dict(base.calibrations)
    security, duplicates = base.security, base.duplicates
    trained = export.tasks()
    for name in trained:
        examples = export.examples[name]
        if name == SecurityTask.name:
            security, calibrations[name] = fit_security(examples, rows)
        else:
            task = get_task(name)
            split = split_examples(examples)
            dense = rows if task.dense_C is not None else None
            fitted = fit(task, split.train, dense)
            classifiers[name] = classifier_spec(fitted, evaluate(fitted, split.validation))
            calibrations[name] = fitted.calibration.spec
        report(f"task {name}")
    pairs = export.chronological_pairs()
    if len(pairs.queries) >= MIN_EXPORT_DUPLICATE_QUERIES:
        corpus = sorted({e.text for examples in export.examples.values() for e in examples})
        duplicates, calibrations["duplicate"] = fit_duplicates(
            corpus or [r.text for r in pairs.reports], pairs, rows
        )
        trained.append("duplicates")
    report("duplicates")
    metadata = {
        "export": {"file": export.source, "records": export.rows, "trained": trained},
        "base": base.metadata,
    }
    return Artifact(classifiers, duplicates, metadata, security, calibrations)


# ------------------------------------------------------------------------------ security


def fit_security(
    examples: Sequence[Example], rows: DenseRows, ordinary: Sequence[str] = ()
) -> tuple[SecuritySpec, FieldCalibration]:
    """The transferable security score (``triage.security``) and its calibration, fitted on
    every project, with its bands measured leaving each project out (the project banded is
    never seen in fitting). ``ordinary``: reports without security labels (GitHub issues)
    whose share in each band is reported, as a cost no project's labels show."""
    texts = [e.text for e in examples]
    embeddings = rows.embeddings(texts)
    direction = prototype_direction(rows.raw(PROTOTYPES))
    positive = np.array([e.label == SecurityTask.labels[1] for e in examples])
    projects = [e.group for e in examples]
    scorer = fit_scorer(direction, embeddings, texts)
    fitted = fit_calibration(scorer.scores(embeddings, texts), positive)
    scores: dict[str, Any] = {
        "n_reports": len(examples),
        "n_positive": int(positive.sum()),
        "calibration": fitted.summary(),
        "targets": {
            "private_min_precision": DEFAULT_MIN_PRECISION_SECURITY,
            "review_recall": DEFAULT_SECURITY_REVIEW_RECALL,
        },
    }
    if len(set(projects)) >= 2:
        held_out = leave_one_project_out(
            direction,
            embeddings,
            texts,
            positive,
            projects,
            DEFAULT_MIN_PRECISION_SECURITY,
            DEFAULT_SECURITY_REVIEW_RECALL,
        )
        scores |= {
            "protocol": "leave one project out: scaling, calibration and band thresholds"
            " fitted on the others",
            "leave_one_project_out": [p.as_dict() for p in held_out.projects],
            "pooled": held_out.pooled().as_dict(),
            "ece_held_out": _r(held_out.ece),
        }
    if ordinary:
        bands = band_thresholds(
            fitted.spec, DEFAULT_MIN_PRECISION_SECURITY, DEFAULT_SECURITY_REVIEW_RECALL
        )
        scores["ordinary_reports"] = {
            "source": "NLBSE'24 GitHub issues (no security labels)",
            "reports": len(ordinary),
            **band_shares(scorer, fitted.spec, bands, rows.embeddings(ordinary), ordinary),
        }
    return SecuritySpec(scorer, scores), fitted.spec


# ---------------------------------------------------------------------------- duplicates


def fit_duplicates(
    corpus: Sequence[str],
    pairs: duplicate_eval.ChronologicalPairs,
    rows: DenseRows,
    held_out: duplicate_eval.ChronologicalPairs | None = None,
) -> tuple[DuplicateSpec, FieldCalibration]:
    """idf from the training corpus only (never the reports searched: a user's tracker is
    not known in advance), then the labelled reports replayed in creation order, as the
    service sees them: recall of the candidate list, and the calibration of ``duplicate_of``
    (is every report's best match among older ones a labelled duplicate?) in creation-order
    folds. ``held_out``: another project's reports replayed with that calibration."""
    spec = fit_duplicate_vectorizer(corpus)
    embeddings = rows.embeddings([r.text for r in pairs.reports])
    fused = duplicate_eval.replay(pairs, spec, embeddings, title_weight=DUPLICATE_TITLE_WEIGHT)
    lexical = duplicate_eval.replay(pairs, spec, None, title_weight=DUPLICATE_TITLE_WEIGHT)
    fitted = fit_calibration(fused.top_score, fused.top_correct, chronological=True)
    threshold = fitted.spec.threshold(DEFAULT_MIN_PRECISION)
    scores: dict[str, Any] = {
        "protocol": "each later report of a pair queries all reports created before it",
        "n_reports": len(pairs.reports),
        "n_queries": fused.n_queries,
        "lexical_weight": LEXICAL_WEIGHT,
        "title_weight": DUPLICATE_TITLE_WEIGHT,
        "recall_at": {str(k): v for k, v in fused.recall.items()},
        "recall_at_lexical_only": {str(k): v for k, v in lexical.recall.items()},
        "calibration": {
            **fitted.summary(),
            "min_precision": DEFAULT_MIN_PRECISION,
            "threshold": None if math.isinf(threshold) else threshold,
            "best_precision": best_precision(fitted.spec.curve),
        },
        "at_default_threshold": fused.flagged(threshold),
    }
    if held_out is not None:
        other = duplicate_eval.replay(
            held_out,
            spec,
            rows.embeddings([r.text for r in held_out.reports]),
            title_weight=DUPLICATE_TITLE_WEIGHT,
        )
        scores["held_out_project"] = {
            "reports": len(held_out.reports),
            "closed_as_duplicate": len(held_out.resolved_duplicate),
            "at_default_threshold": other.flagged(threshold),
            "at_similarity_0.65": other.flagged(PREVIOUS_DUPLICATE_THRESHOLD),
        }
    scores["at_similarity_0.65"] = fused.flagged(PREVIOUS_DUPLICATE_THRESHOLD)
    return DuplicateSpec(spec, DUPLICATE_TITLE_WEIGHT, scores), fitted.spec


def best_precision(curve: PrecisionCurve, min_support: int = MIN_SUPPORT) -> dict[str, Any]:
    """The highest held-out precision any threshold reached with enough support."""
    best = max(
        (
            (p, t, n)
            for t, p, n in zip(curve.thresholds, curve.precision, curve.support, strict=True)
            if n >= min_support
        ),
        default=None,
    )
    if best is None:
        return {}
    return {"precision": best[0], "threshold": best[1], "support": best[2]}


TRAIN_STEPS = len(TASKS) + 1  # one progress report per task, one for duplicates


def training_metadata(data_dir: Path) -> dict[str, Any]:
    """Where the model came from. No dates or absolute paths: they would break determinism."""
    import scipy  # type: ignore[import-untyped, unused-ignore]
    import sklearn  # type: ignore[import-untyped, unused-ignore]

    files = sorted({f for cls in TASKS.values() for f in cls.data_files} | set(DUPLICATE_FILES))
    return {
        "data_sha256": {f: sha256_file(data_dir / f) for f in files},
        "seed": SEED,
        "validation_fraction": VALIDATION_FRACTION,
        "cv_folds": CV_FOLDS,
        "model": "tf-idf (sublinear tf, l2) + logistic regression; type: mean of that and a "
        "logistic regression over [MiniLM embedding (128 tokens) | template cues]",
        "embedding": {"dimensions": DIMENSIONS, "max_tokens": DEFAULT_MAX_TOKENS},
        "cues_version": CUES_VERSION,
        "settings": {
            name: {
                "analyzer": cls.settings.analyzer,
                "min_df": cls.settings.min_df,
                "C": cls.settings.C,
                "class_weight": cls.settings.class_weight,
                **({"dense_C": cls.dense_C} if cls.dense_C is not None else {}),
                **(
                    {"other_group_weight": cls.other_group_weight} if cls.other_group_weight else {}
                ),
            }
            for name, cls in sorted(TASKS.items())
        },
        "versions": {
            "python": platform.python_version().rsplit(".", 1)[0],
            "numpy": np.__version__,
            "scipy": scipy.__version__,
            "scikit-learn": sklearn.__version__,
        },
    }


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def save(artifact: Artifact, out_dir: Path) -> list[Path]:
    """Write the artifact (JSON + npz, no pickle) into ``out_dir``."""
    return save_artifact(artifact, out_dir)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Train the local triage model.")
    parser.add_argument("--data-dir", type=Path, default=Path("../shared/data"))
    parser.add_argument("--out", type=Path, default=default_model_dir())
    args = parser.parse_args(argv)
    for path in save(train(args.data_dir, progress=print), args.out):
        print(f"wrote {path} ({path.stat().st_size} bytes)")


if __name__ == "__main__":
    main()
