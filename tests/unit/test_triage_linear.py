"""Artifact-based inference (numpy/scipy) must equal the scikit-learn pipeline it came from.

Trains tiny models on synthetic text, so it runs without ../shared/data.
"""

from __future__ import annotations

import random
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
from ai_pipeline.triage.linear import LinearClassifier, TfidfFeatures
from ai_pipeline.triage.tasks import Example, ModelSettings, Task
from ai_pipeline.triage.train import FittedTask, classifier_spec, fit

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
    binary = True
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
        duplicates=DuplicateSpec(type_spec.vectorizer, title_weight=0.5, threshold=0.6),
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


def test_thresholds_are_calibrated(fitted_type: FittedTask, fitted_security: FittedTask) -> None:
    assert 0.3 <= fitted_type.thresholds["confidence"] <= 0.95
    assert 0.0 < fitted_security.thresholds["positive"] < 1.0
