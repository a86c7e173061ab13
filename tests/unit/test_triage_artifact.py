"""Artifact save/load: JSON + npz, no pickle, byte-deterministic, version-checked."""

from __future__ import annotations

import dataclasses
import json
import re
import zipfile
from pathlib import Path

import numpy as np
import pytest

from ai_pipeline.triage import artifact as artifact_module
from ai_pipeline.triage.artifact import (
    ARTIFACT_FILES,
    Artifact,
    ArtifactError,
    ClassifierSpec,
    DenseMemberSpec,
    DuplicateSpec,
    SecuritySpec,
    VectorizerSpec,
    default_model_dir,
    load_artifact,
    save_artifact,
)
from ai_pipeline.triage.calibration import Calibrator, FieldCalibration, PrecisionCurve
from ai_pipeline.triage.security import SecurityScorer
from ai_pipeline.triage.type_features import CUES_VERSION, N_CUES

TRIAGE_SRC = Path(artifact_module.__file__).parent
MAX_ARTIFACT_BYTES = 4_000_000


def vectorizer(terms: list[str], seed: int) -> VectorizerSpec:
    idf = np.random.default_rng(seed).uniform(1.0, 5.0, len(terms))
    return VectorizerSpec(analyzer="bigram", vocabulary=tuple(sorted(terms)), idf=idf)


def classifier(name: str, labels: tuple[str, ...], spec: VectorizerSpec) -> ClassifierSpec:
    rows = 1 if len(labels) == 2 else len(labels)
    rng = np.random.default_rng(len(name))
    return ClassifierSpec(
        name=name,
        labels=labels,
        vectorizer=spec,
        coef=rng.normal(size=(rows, len(spec.vocabulary))).astype(np.float32),
        intercept=rng.normal(size=rows).astype(np.float32),
        link="sigmoid" if rows == 1 else "softmax",
        scores={"macro_f1": 0.5, "nested": {"a": 1}},
        decides=name != "priority",
    )


def dense_member(n_labels: int, dimensions: int = 8) -> DenseMemberSpec:
    rng = np.random.default_rng(7)
    return DenseMemberSpec(
        coef=rng.normal(size=(n_labels, dimensions + N_CUES)).astype(np.float32),
        intercept=rng.normal(size=n_labels).astype(np.float32),
        embedding_dimensions=dimensions,
        embedding_max_tokens=128,
        cues_version=CUES_VERSION,
    )


def sample_artifact() -> Artifact:
    shared = vectorizer(["crash", "crash on", "feature", "how", "ünï"], seed=1)
    same_content = VectorizerSpec("bigram", shared.vocabulary, shared.idf.copy())
    other = vectorizer(["password", "xss"], seed=2)
    type_spec = classifier("type", ("bug", "feature", "question"), shared)
    return Artifact(
        classifiers={
            "type": dataclasses.replace(type_spec, members=(dense_member(3),)),
            "priority": classifier("priority", ("critical", "high", "low", "medium"), same_content),
            "security": classifier("security", ("other", "security"), other),
        },
        duplicates=DuplicateSpec(vectorizer(["a", "b"], seed=3), title_weight=0.5),
        metadata={"seed": 42, "data_sha256": {"x.csv": "00"}},
        security=SecuritySpec(
            SecurityScorer(
                direction=tuple(float(v) for v in np.linspace(-1, 1, 384, dtype=np.float32)),
                similarity_mean=0.02,
                similarity_std=0.04,
                vocabulary_mean=0.3,
                vocabulary_std=0.8,
            ),
            {"pooled": {"recall": 0.55}},
        ),
        calibrations={
            "type": FieldCalibration(
                Calibrator("platt", a=1.25, b=-0.5),
                PrecisionCurve((0.1, 0.2), (0.8, 0.9), (20, 10), (1.0, 0.6), 20),
            ),
            "duplicate": FieldCalibration(
                Calibrator("isotonic", (0.5, 0.9), (0.01, 0.2)),
                PrecisionCurve((0.6,), (0.1,), (30,), (1.0,), 30),
            ),
        },
    )


def test_round_trip_keeps_everything(tmp_path: Path) -> None:
    original = sample_artifact()
    save_artifact(original, tmp_path)
    loaded = load_artifact(tmp_path)
    assert loaded.metadata == original.metadata
    assert loaded.calibrations == original.calibrations
    assert loaded.duplicates.vectorizer.same_as(original.duplicates.vectorizer)
    for name, spec in original.classifiers.items():
        got = loaded.classifier(name)
        assert got.labels == spec.labels
        assert got.link == spec.link
        assert got.decides == spec.decides
        assert got.scores == spec.scores
        assert got.vectorizer.same_as(spec.vectorizer)
        assert np.array_equal(got.vectorizer.idf, spec.vectorizer.idf)  # exact, not rounded
        assert got.coef.dtype == np.float32
        assert np.array_equal(got.coef, spec.coef)
        assert np.array_equal(got.intercept, spec.intercept)
        assert len(got.members) == len(spec.members)
        for got_member, member in zip(got.members, spec.members, strict=True):
            assert np.array_equal(got_member.coef, member.coef)
            assert np.array_equal(got_member.intercept, member.intercept)
            assert got_member.embedding_dimensions == member.embedding_dimensions
            assert got_member.embedding_max_tokens == member.embedding_max_tokens
            assert got_member.cues_version == member.cues_version
    assert len(loaded.classifier("type").members) == 1
    assert loaded.security is not None and original.security is not None
    assert loaded.security.scorer == original.security.scorer  # float32 direction: exact
    assert loaded.security.scores == original.security.scores


def test_identical_vectorizers_are_stored_once_and_shared(tmp_path: Path) -> None:
    save_artifact(sample_artifact(), tmp_path)
    vocab = json.loads((tmp_path / "vocab.json").read_text(encoding="utf-8"))
    assert sorted(vocab) == ["duplicates", "priority", "security"]
    loaded = load_artifact(tmp_path)
    assert loaded.classifier("type").vectorizer is loaded.classifier("priority").vectorizer


def test_weights_load_without_pickle(tmp_path: Path) -> None:
    save_artifact(sample_artifact(), tmp_path)
    with np.load(tmp_path / "weights.npz", allow_pickle=False) as weights:
        assert sorted(weights.files) == [
            "priority.coef",
            "priority.intercept",
            "security.coef",
            "security.direction",
            "security.intercept",
            "type.coef",
            "type.intercept",
            "type.member0.coef",
            "type.member0.intercept",
        ]
        assert all(weights[key].dtype == np.float32 for key in weights.files)


def test_saving_twice_gives_identical_bytes(tmp_path: Path) -> None:
    first, second = tmp_path / "one", tmp_path / "two"
    save_artifact(sample_artifact(), first)
    save_artifact(sample_artifact(), second)
    for name in ARTIFACT_FILES:
        assert (first / name).read_bytes() == (second / name).read_bytes(), name
    with zipfile.ZipFile(first / "weights.npz") as archive:
        assert {info.date_time for info in archive.infolist()} == {(1980, 1, 1, 0, 0, 0)}


def test_object_arrays_are_refused() -> None:
    with pytest.raises(ArtifactError):
        artifact_module.deterministic_npz({"bad": np.array([{"a": 1}], dtype=object)})


def test_missing_files_raise_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ArtifactError, match="missing"):
        load_artifact(tmp_path)


def test_a_model_from_before_calibration_is_refused_with_how_to_retrain(tmp_path: Path) -> None:
    save_artifact(sample_artifact(), tmp_path)
    manifest_path = tmp_path / "manifest.json"
    manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    manifest["format_version"] = 1
    manifest_path.write_text(json.dumps(manifest), encoding="utf-8")
    with pytest.raises(ArtifactError, match=r"unsupported .*ai-pipeline train"):
        load_artifact(tmp_path)


def test_calibration_is_one_line_per_field(tmp_path: Path) -> None:
    save_artifact(sample_artifact(), tmp_path)
    lines = (tmp_path / "calibration.json").read_text(encoding="utf-8").splitlines()
    assert lines[0] == "{" and lines[-1] == "}"
    assert [line.split(":")[0].strip() for line in lines[1:-1]] == ['"duplicate"', '"type"']


def test_tokenizer_version_mismatch_is_refused(tmp_path: Path) -> None:
    save_artifact(sample_artifact(), tmp_path)
    manifest_path = tmp_path / "manifest.json"
    manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    manifest["tokenizer_version"] = -1
    manifest_path.write_text(json.dumps(manifest), encoding="utf-8")
    with pytest.raises(ArtifactError, match="retrain"):
        load_artifact(tmp_path)


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [("cues_version", -1, "retrain"), ("kind", "tree", "unknown member"), ("n_features", 0, None)],
)
def test_dense_member_mismatch_is_refused(
    tmp_path: Path, field: str, value: object, message: str | None
) -> None:
    save_artifact(sample_artifact(), tmp_path)
    manifest_path = tmp_path / "manifest.json"
    manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    manifest["classifiers"]["type"]["members"][0][field] = value
    if field == "n_features":  # informational only: shapes are checked on the arrays
        manifest["classifiers"]["type"]["members"][0]["embedding_dimensions"] = 9
    manifest_path.write_text(json.dumps(manifest), encoding="utf-8")
    with pytest.raises(ArtifactError, match=message or "shape"):
        load_artifact(tmp_path)


def test_shipped_artifact_loads_and_is_small() -> None:
    directory = default_model_dir()
    assert sum((directory / name).stat().st_size for name in ARTIFACT_FILES) < MAX_ARTIFACT_BYTES
    artifact = load_artifact()
    assert set(artifact.classifiers) == {"type", "priority", "severity"}
    assert artifact.security is not None
    assert len(artifact.security.scorer.direction) == 384
    (member,) = artifact.classifier("type").members
    assert member.embedding_dimensions == 384
    assert member.embedding_max_tokens == 128
    assert set(artifact.calibrations) == {"type", "priority", "severity", "security", "duplicate"}
    # Another project's priorities are measured, never acted on (signals decide instead).
    assert not artifact.classifier("priority").decides and artifact.classifier("type").decides
    assert len(artifact.metadata["data_sha256"]) == 7


def test_no_pickle_or_joblib_in_triage_code() -> None:
    forbidden = re.compile(r"^\s*(?:import|from)\s+(?:pickle|joblib|cloudpickle)\b", re.MULTILINE)
    for source in TRIAGE_SRC.glob("*.py"):
        assert not forbidden.search(source.read_text(encoding="utf-8")), source.name
        assert "allow_pickle=True" not in source.read_text(encoding="utf-8"), source.name
