"""Artifact-based inference (numpy/scipy) must equal the scikit-learn pipeline it came from.

Trains tiny models on synthetic text, so it runs without ../shared/data.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

from ai_pipeline.triage.artifact import (
    Artifact,
    ClassifierSpec,
    DuplicateSpec,
    load_artifact,
    save_artifact,
)
from ai_pipeline.triage.embeddings import DIMENSIONS
from ai_pipeline.triage.linear import LinearClassifier, TfidfFeatures
from ai_pipeline.triage.tasks import Example, ModelSettings, Task
from ai_pipeline.triage.train import DenseRows, FittedTask, classifier_spec, fit
from ai_pipeline.triage.type_features import N_CUES, dense_row

WORDS = {
    "bug": [
        "crash",
        "error",
        "exception",
        "fails",
        "broken",
        "stack",
        "trace",
        "segfault",
        "wrong",
        "regression",
    ],
    "feature": [
        "add",
        "support",
        "please",
        "would",
        "nice",
        "request",
        "option",
        "allow",
        "new",
        "enable",
    ],
    "question": [
        "how",
        "why",
        "what",
        "configure",
        "possible",
        "docs",
        "help",
        "?",
        "use",
        "setup",
    ],
}
FILLER = [
    "the",
    "a",
    "app",
    "page",
    "user",
    "server",
    "file",
    "when",
    "on",
    "with",
    "it",
    "is",
    "this",
]


def synthetic_examples(n_per_label: int, seed: int) -> list[Example]:
    rng = random.Random(seed)
    examples = []
    for label, words in WORDS.items():
        for _ in range(n_per_label):
            tokens = rng.choices(words, k=rng.randint(2, 6)) + rng.choices(FILLER, k=8)
            rng.shuffle(tokens)
            examples.append(Example(" ".join(tokens), label, "synthetic"))
    return examples


class TinyTypeTask(Task):
    name = "type"
    labels = ("bug", "feature", "question")
    data_files = ()
    settings = ModelSettings(analyzer="bigram", min_df=1, C=10.0, class_weight=None)


class TinySecurityTask(Task):
    name = "security"
    labels = ("other", "security")
    data_files = ()
    settings = ModelSettings(analyzer="unigram", min_df=1, C=1.0, class_weight="balanced")


def security_examples(seed: int) -> list[Example]:
    rng = random.Random(seed)
    risky = ["xss", "injection", "password", "leak", "token", "exposed", "attacker"]
    examples = []
    for i in range(80):
        label = "security" if i % 4 == 0 else "other"
        words = rng.choices(risky if label == "security" else FILLER, k=4)
        examples.append(Example(" ".join(words + rng.choices(FILLER, k=6)), label, "s"))
    return examples


@pytest.fixture(scope="module")
def fitted_type() -> FittedTask:
    return fit(TinyTypeTask(), synthetic_examples(30, seed=1))


@pytest.fixture(scope="module")
def fitted_security() -> FittedTask:
    return fit(TinySecurityTask(), security_examples(seed=2))


HELD_OUT = [e.text for e in synthetic_examples(15, seed=99)] + [
    "",  # no known term: intercept only
    "completely unknown vocabulary here",
    "CRASH crash crash when I click ?",  # repeated terms: sublinear tf
    "Ünïcödé ＡＢＣ how to add support",
]


def assert_same_as_sklearn(fitted: FittedTask, spec: ClassifierSpec) -> None:
    classifier = LinearClassifier(spec)
    matrix = classifier.features.transform(HELD_OUT)
    expected_matrix = fitted.pipeline[0].transform(HELD_OUT)
    np.testing.assert_allclose(matrix.toarray(), expected_matrix.toarray(), rtol=0, atol=1e-12)
    assert classifier.predict(matrix) == fitted.predict(HELD_OUT)
    np.testing.assert_allclose(
        classifier.predict_proba(matrix), fitted.predict_proba(HELD_OUT), rtol=0, atol=1e-5
    )


def test_multiclass_inference_equals_sklearn(fitted_type: FittedTask) -> None:
    assert_same_as_sklearn(fitted_type, classifier_spec(fitted_type, {}))


def test_binary_inference_equals_sklearn(fitted_security: FittedTask) -> None:
    spec = classifier_spec(fitted_security, {})
    assert spec.link == "sigmoid"
    assert spec.coef.shape[0] == 1
    assert_same_as_sklearn(fitted_security, spec)


def test_inference_after_save_and_load_equals_sklearn(
    fitted_type: FittedTask, fitted_security: FittedTask, tmp_path: Path
) -> None:
    type_spec = classifier_spec(fitted_type, {})
    artifact = Artifact(
        classifiers={"type": type_spec, "security": classifier_spec(fitted_security, {})},
        duplicates=DuplicateSpec(type_spec.vectorizer, title_weight=0.5),
    )
    save_artifact(artifact, tmp_path)
    loaded = load_artifact(tmp_path)
    assert_same_as_sklearn(fitted_type, loaded.classifier("type"))
    assert_same_as_sklearn(fitted_security, loaded.classifier("security"))


def test_single_vector_path_equals_batch_path(fitted_type: FittedTask) -> None:
    classifier = LinearClassifier(classifier_spec(fitted_type, {}))
    batch = classifier.predict_proba(classifier.features.transform(HELD_OUT))
    for text, expected in zip(HELD_OUT, batch, strict=True):
        single = classifier.proba_vector(classifier.features.vector(text))
        np.testing.assert_allclose(single, expected, rtol=0, atol=1e-12)


def test_features_are_l2_normalised(fitted_type: FittedTask) -> None:
    features = TfidfFeatures(classifier_spec(fitted_type, {}).vectorizer)
    vector = features.vector("crash crash add support how")
    assert np.isclose(np.linalg.norm(vector.values), 1.0)
    assert list(vector.indices) == sorted(vector.indices)
    assert features.vector("zzz unknown").is_empty


def test_the_confidence_is_calibrated_on_out_of_fold_predictions(fitted_type: FittedTask) -> None:
    calibration = fitted_type.calibration
    assert calibration.calibrator.method in ("isotonic", "platt")
    assert len(calibration.held_out) == fitted_type.n_train  # every training text, once
    assert 0.0 <= calibration.ece <= 0.5
    assert calibration.curve.total == fitted_type.n_train


# ------------------------------------------------------- dense members (issue-type ensemble)


def fake_embed(texts: Sequence[str]) -> np.ndarray:
    """A deterministic stand-in for MiniLM: dimension i counts label i's words, plus noise."""
    rows = []
    for text in texts:
        words = text.casefold().split()
        row = np.random.default_rng(len(text)).normal(0.0, 0.05, DIMENSIONS)
        for i, vocabulary in enumerate(WORDS.values()):
            row[i] += sum(word in vocabulary for word in words)
        rows.append(row / max(float(np.linalg.norm(row)), 1e-12))
    return np.asarray(rows, dtype=np.float32)


class TinyDenseTypeTask(TinyTypeTask):
    dense_C = 10.0


@pytest.fixture(scope="module")
def fitted_dense() -> FittedTask:
    return fit(TinyDenseTypeTask(), synthetic_examples(30, seed=1), DenseRows(fake_embed))


def test_dense_ensemble_equals_sklearn(fitted_dense: FittedTask, tmp_path: Path) -> None:
    spec = classifier_spec(fitted_dense, {})
    assert len(spec.members) == 1
    assert spec.members[0].coef.shape == (3, DIMENSIONS + N_CUES)
    security = fit(TinySecurityTask(), security_examples(seed=2))
    artifact = Artifact(
        classifiers={"type": spec, "security": classifier_spec(security, {})},
        duplicates=DuplicateSpec(spec.vectorizer, title_weight=0.5),
    )
    save_artifact(artifact, tmp_path)
    assert fitted_dense.dense is not None
    dense = fitted_dense.dense(HELD_OUT)
    expected = fitted_dense.predict_proba(HELD_OUT)
    for loaded in (spec, load_artifact(tmp_path).classifier("type")):
        classifier = LinearClassifier(loaded)
        assert classifier.needs_dense
        matrix = classifier.features.transform(HELD_OUT)
        np.testing.assert_allclose(
            classifier.predict_proba(matrix, dense), expected, rtol=0, atol=1e-5
        )
        assert classifier.predict(matrix, dense) == fitted_dense.predict(HELD_OUT)
        for i, text in enumerate(HELD_OUT):
            single = classifier.proba_vector(classifier.features.vector(text), dense[i])
            np.testing.assert_allclose(single, expected[i], rtol=0, atol=1e-5)


def test_dense_ensemble_is_the_mean_of_both_models(fitted_dense: FittedTask) -> None:
    assert fitted_dense.dense is not None
    tfidf_only = fitted_dense.pipeline.predict_proba(HELD_OUT)
    dense_only = fitted_dense.member.predict_proba(fitted_dense.dense(HELD_OUT))
    np.testing.assert_allclose(
        fitted_dense.predict_proba(HELD_OUT), (tfidf_only + dense_only) / 2, rtol=0, atol=1e-12
    )


def test_embedding_changes_the_decision(fitted_dense: FittedTask) -> None:
    classifier = LinearClassifier(classifier_spec(fitted_dense, {}))
    text = "crash error the app"  # the words say bug
    vector = classifier.features.vector(text)
    as_bug = dense_row(fake_embed(["crash crash crash"])[0], text)
    as_question = dense_row(fake_embed(["how why what how"])[0], text)
    bug_label, _, bug_proba = classifier.best(vector, as_bug)
    question_label, _, question_proba = classifier.best(vector, as_question)
    q = classifier.labels.index("question")
    assert question_proba[q] > bug_proba[q] + 0.2
    assert (bug_label, question_label) == ("bug", "question")


def test_dense_classifier_refuses_to_guess_without_dense_rows(fitted_dense: FittedTask) -> None:
    classifier = LinearClassifier(classifier_spec(fitted_dense, {}))
    with pytest.raises(ValueError, match="dense rows"):
        classifier.proba_vector(classifier.features.vector("crash"))


def test_dense_rows_embed_each_text_once() -> None:
    calls: list[list[str]] = []

    def counting(texts: Sequence[str]) -> np.ndarray:
        calls.append(list(texts))
        return fake_embed(texts)

    rows = DenseRows(counting)
    first = rows(["a crash", "how to add"])
    second = rows(["how to add", "a crash", "new text"])
    assert [len(c) for c in calls] == [2, 1]
    np.testing.assert_array_equal(first[0], second[1])
    np.testing.assert_array_equal(first[1], second[0])
    assert first.shape == (2, DIMENSIONS + N_CUES)
