"""Retraining on ../shared/data: sane held-out scores, byte-identical artifacts, and
artifact inference equal to scikit-learn on the real validation texts.

Skipped on a clone without the data folder; a failure under CI (env var CI set).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest

from ai_pipeline.triage.artifact import ARTIFACT_FILES, Artifact, load_artifact
from ai_pipeline.triage.linear import LinearClassifier
from ai_pipeline.triage.tasks import get_task
from ai_pipeline.triage.train import (
    DenseRows,
    Embed,
    classifier_spec,
    fit,
    save,
    split_examples,
    train,
)
from tests.conftest import require_data

# Measured on the held-out split when the shipped model was trained, minus a margin that
# absorbs library-version noise but not a real regression.
FLOORS = {
    ("type", "macro_f1"): 0.75,  # measured 0.803
    ("type", "accuracy"): 0.75,  # measured 0.803
    ("priority", "macro_f1"): 0.42,  # measured 0.497
    ("priority", "accuracy"): 0.60,  # measured 0.677
    ("severity", "macro_f1"): 0.42,  # measured 0.497
}
PER_REPO_FLOOR = 0.74  # NLBSE protocol on the held-out split, measured 0.804
# NLBSE protocol, 5-fold cross-validation per repository (one repeat here, two when shipped).
PER_REPO_CV_FLOOR = 0.77  # measured 0.814 ± 0.018 (5 x 2)
GENERIC_CV_FLOOR = 0.76  # measured 0.803 ± 0.029 (5 x 2)
CV_REPEATS = 1  # the shipped model uses 2; one keeps this test's training time down
# Each FARSEC project banded by a fit on the other two, pooled: recall of the private and
# review bands together, measured 0.55 at the default targets.
SECURITY_FLOORS = {"recall_private_review": 0.45}
# Expected calibration error on held-out data (targets 0.05; the type split has 300 issues,
# so a margin for noise): measured type 0.043, security 0.011, duplicates 0.003.
ECE_CEILINGS = {"type": 0.07, "security": 0.05, "duplicate": 0.05}
# SeaMonkey replayed in creation order (46 queries): measured 0.674 / 0.891 / 0.935.
RECALL_FLOORS = {"1": 0.55, "5": 0.82, "10": 0.87}

# Two trainings, each embedding about 5,600 reports: far longer than the suite's default.
pytestmark = [pytest.mark.data, pytest.mark.timeout(1200)]


@pytest.fixture(scope="module")
def data_dir() -> Path:
    return require_data()


@pytest.fixture(scope="module")
def embed() -> Embed:
    """The service's embedder, memoised per call: both trainings make the same calls, so the
    second one reuses the first one's vectors (embedding 1,500 issues takes about a minute)."""
    from ai_pipeline.triage.embeddings import Embedder

    embedder = Embedder(threads=2)
    seen: dict[tuple[str, ...], npt.NDArray[np.float32]] = {}

    def memoised(texts: Sequence[str]) -> npt.NDArray[np.float32]:
        key = tuple(texts)
        if key not in seen:
            seen[key] = embedder.embed(texts)
        return seen[key]

    return memoised


@pytest.fixture(scope="module")
def retrained(data_dir: Path, embed: Embed, tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """Train twice from scratch into two directories (the second without the type model's
    cross-validation, which only adds figures to the manifest)."""
    directories = []
    for name, repeats in (("first", CV_REPEATS), ("second", 0)):
        out = tmp_path_factory.mktemp(name)
        save(train(data_dir, embed=embed, protocol_repeats=repeats), out)
        directories.append(out)
    return directories


def test_training_twice_gives_identical_bytes(retrained: list[Path]) -> None:
    first, second = retrained
    for name in ARTIFACT_FILES:
        if name != "manifest.json":
            assert (first / name).read_bytes() == (second / name).read_bytes(), name
    manifests = [json.loads((d / "manifest.json").read_text()) for d in retrained]
    del manifests[0]["classifiers"]["type"]["scores"]["cross_validation"]
    assert manifests[0] == manifests[1]


def test_validation_scores_are_sane(retrained: list[Path]) -> None:
    artifact = load_artifact(retrained[0])
    for (task, metric), floor in FLOORS.items():
        assert artifact.classifier(task).scores[metric] >= floor, (task, metric)
    type_scores = artifact.classifier("type").scores
    assert type_scores["per_repository_models"]["mean"] >= PER_REPO_FLOOR
    cv = type_scores["cross_validation"]
    assert cv["per_repository"]["mean"] >= PER_REPO_CV_FLOOR
    assert cv["generic"]["mean"] >= GENERIC_CV_FLOOR
    assert len(cv["per_repository"]) == len(cv["generic"]) == 2 + 5  # mean, std, 5 repos
    assert artifact.security is not None
    security = artifact.security.scores
    assert [r["project"] for r in security["leave_one_project_out"]] == [
        "ambari",
        "camel",
        "wicket",
    ]
    for metric, floor in SECURITY_FLOORS.items():
        assert security["pooled"][metric] >= floor, metric
    recall = artifact.duplicates.scores["recall_at"]
    for k, floor in RECALL_FLOORS.items():
        assert recall[k] >= floor, f"recall@{k}"
    assert artifact.duplicates.scores["n_queries"] == 46
    # Fusion must beat either signal alone, or it is not earning its cost.
    assert recall["5"] > artifact.duplicates.scores["recall_at_lexical_only"]["5"]
    eces = {
        "type": type_scores["calibration"]["ece"],
        "security": security["ece_held_out"],
        "duplicate": artifact.duplicates.scores["calibration"]["ece_cross_fitted"],
    }
    for field, ceiling in ECE_CEILINGS.items():
        assert eces[field] <= ceiling, (field, eces[field])
    # What acts is right at the target on the held-out split (0.9, less sampling noise).
    assert type_scores["calibration"]["decided_precision"] >= 0.85
    assert set(artifact.calibrations) == {"type", "priority", "severity", "security", "duplicate"}
    explicit = artifact.classifier("priority").scores["explicit_signals"]
    assert explicit["reports"] == 2503 and 0.0 < explicit["share_set"] < 0.1


def test_shipped_artifact_is_up_to_date(retrained: list[Path]) -> None:
    """The committed model must be what ``train`` produces now (same data, same scores)."""
    fresh, shipped = load_artifact(retrained[0]), load_artifact()
    assert shipped.metadata["data_sha256"] == fresh.metadata["data_sha256"]
    assert _scores(shipped) == pytest.approx(_scores(fresh), abs=0.02)
    if shipped.metadata["versions"] == fresh.metadata["versions"]:
        assert shipped.security is not None and fresh.security is not None
        assert_close(asdict(shipped.security.scorer), asdict(fresh.security.scorer))
        # Calibrators and their precision curves (thresholds are raw scores of held-out
        # values; counts must be equal).
        assert_close(
            {name: spec.to_json() for name, spec in shipped.calibrations.items()},
            {name: spec.to_json() for name, spec in fresh.calibrations.items()},
        )


# Another CPU gives other low digits (onnxruntime's kernels differ by instruction set: one
# machine's security direction differed from ours in the 7th significant digit), so values are
# compared with a tolerance far above that noise and far below what a stale artifact shows
# (retraining on other data or code moves them in the 2nd or 3rd digit).
VALUE_TOLERANCE = {"rel": 1e-4, "abs": 1e-5}


def assert_close(
    shipped: object, fresh: object, tolerance: dict[str, float] = VALUE_TOLERANCE, at: str = ""
) -> None:
    """Equal structure, equal strings and integers, floats within ``tolerance``."""
    if isinstance(fresh, dict):
        assert isinstance(shipped, dict) and shipped.keys() == fresh.keys(), at
        for key, value in fresh.items():
            assert_close(shipped[key], value, tolerance, f"{at}.{key}")
    elif isinstance(fresh, list | tuple):
        assert isinstance(shipped, list | tuple) and len(shipped) == len(fresh), at
        for i, (mine, theirs) in enumerate(zip(shipped, fresh, strict=True)):
            assert_close(mine, theirs, tolerance, f"{at}[{i}]")
    elif isinstance(fresh, float):
        assert shipped == pytest.approx(fresh, **tolerance), at
    else:
        assert shipped == fresh, at


def test_the_comparison_tolerates_another_cpu_and_catches_a_stale_value() -> None:
    direction = [0.0577589, -0.0123456, 0.1]
    assert_close({"direction": [0.057759, -0.0123456, 0.1]}, {"direction": direction})
    with pytest.raises(AssertionError):  # a retrained direction moves in the 3rd digit
        assert_close({"direction": [0.0581, -0.0123456, 0.1]}, {"direction": direction})
    with pytest.raises(AssertionError):
        assert_close({"labels": ["bug"]}, {"labels": ["feature"]})


def _scores(artifact: Artifact) -> list[float]:
    flat = [artifact.classifier(task).scores[metric] for task, metric in FLOORS]
    assert artifact.security is not None
    flat += [float(artifact.security.scores["pooled"][m]) for m in SECURITY_FLOORS]
    return flat + [float(v) for v in artifact.duplicates.scores["recall_at"].values()]


@pytest.mark.parametrize("task_name", ["type", "priority"])
def test_artifact_inference_equals_sklearn_on_validation(
    data_dir: Path, embed: Embed, task_name: str
) -> None:
    task = get_task(task_name)
    split = split_examples(task.examples(data_dir))
    dense = DenseRows(embed) if task.dense_C is not None else None
    fitted = fit(task, split.train, dense)
    classifier = LinearClassifier(classifier_spec(fitted, {}))
    assert classifier.needs_dense == (task_name == "type")
    texts = [e.text for e in split.validation]
    matrix = classifier.features.transform(texts)
    rows = dense(texts) if dense is not None else None
    assert classifier.predict(matrix, rows) == fitted.predict(texts)
    np.testing.assert_allclose(
        classifier.predict_proba(matrix, rows), fitted.predict_proba(texts), rtol=0, atol=1e-5
    )
