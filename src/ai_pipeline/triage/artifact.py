"""The trained triage model on disk, without pickle.

Layout of an artifact directory:

- ``manifest.json``: format and tokenizer versions, per-classifier labels, validation and
  calibration scores, the duplicate-search settings and metadata (data file sha256s, seed,
  library versions). Small and human-readable: review it in a diff.
- ``calibration.json``: per field, the calibrator of its confidence and the held-out
  precision curve its thresholds are read from (``calibration.py``), one line per field.
- ``vocab.json``: each distinct tf-idf vectorizer (analyzer, sorted vocabulary, idf).
  Classifiers that were fitted on the same texts share one entry.
- ``weights.npz``: coefficient matrices and intercepts (float32), read with
  ``allow_pickle=False``.

A classifier may carry further *dense members* (the issue-type model does): linear models
over per-report dense features (a sentence embedding and template cues, see
``type_features.py``) whose probabilities are averaged with the tf-idf model's.

Writing is byte-deterministic (sorted keys, fixed zip timestamps) so that retraining on the
same data gives the same files and a model change always shows up in review.
"""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Literal, cast

import numpy as np
import numpy.typing as npt

from ai_pipeline.triage.calibration import FieldCalibration
from ai_pipeline.triage.embeddings import DIMENSIONS
from ai_pipeline.triage.features import TOKENIZER_VERSION
from ai_pipeline.triage.security import SecurityScorer
from ai_pipeline.triage.type_features import CUES_VERSION, N_CUES

FORMAT_VERSION = 2  # 2: calibrated confidences (calibration.json)
SECURITY_DIRECTION = "security.direction"
MANIFEST_FILE = "manifest.json"
VOCAB_FILE = "vocab.json"
WEIGHTS_FILE = "weights.npz"
CALIBRATION_FILE = "calibration.json"
ARTIFACT_FILES = (MANIFEST_FILE, VOCAB_FILE, WEIGHTS_FILE, CALIBRATION_FILE)
# Fields with a calibration: the classifiers, the security score and duplicate_of.
CALIBRATED_FIELDS = ("type", "priority", "severity", "security", "duplicate")

Analyzer = Literal["unigram", "bigram"]
Link = Literal["softmax", "sigmoid"]
FloatArray = npt.NDArray[np.float64]
Float32Array = npt.NDArray[np.float32]

# Any fixed date works; zip cannot store dates before 1980.
_ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)


class ArtifactError(ValueError):
    """The artifact directory is missing, incomplete or from an incompatible version."""


@dataclass(frozen=True, eq=False)
class VectorizerSpec:
    """Everything needed to recompute scikit-learn's ``TfidfVectorizer.transform``."""

    analyzer: Analyzer
    vocabulary: tuple[str, ...]  # sorted; position = feature column
    idf: FloatArray
    sublinear_tf: bool = True
    norm: Literal["l2"] = "l2"

    def same_as(self, other: VectorizerSpec) -> bool:
        return (
            self.analyzer == other.analyzer
            and self.sublinear_tf == other.sublinear_tf
            and self.norm == other.norm
            and self.vocabulary == other.vocabulary
            and np.array_equal(self.idf, other.idf)
        )


@dataclass(frozen=True, eq=False)
class DenseMemberSpec:
    """A softmax linear model over a dense block ``[embedding | cues]`` of one report.

    ``embedding_max_tokens`` is the token budget the embedding was computed with in training
    (inference must use the same), ``cues_version`` the cue set (``type_features.py``).
    """

    coef: Float32Array  # (n_labels, embedding dimensions + number of cues)
    intercept: Float32Array
    embedding_dimensions: int
    embedding_max_tokens: int
    cues_version: int

    @property
    def n_features(self) -> int:
        return int(self.coef.shape[1])


@dataclass(frozen=True, eq=False)
class ClassifierSpec:
    """A linear text classifier: ``link(X @ coef.T + intercept)``.

    ``labels`` are in the column order of the fitted model (scikit-learn's ``classes_``).
    For ``sigmoid`` there is a single row of coefficients scoring ``labels[1]``.
    With ``members`` (softmax only), the prediction is the mean of this model's probabilities
    and each member's, all in ``labels`` order.

    ``decides``: whether the service may set the field from this model. Priority and
    severity models fitted on another project's labels do not (``signals.py``); those a
    team fits on its own labels (``train --from``) do.
    """

    name: str
    labels: tuple[str, ...]
    vectorizer: VectorizerSpec
    coef: Float32Array
    intercept: Float32Array
    link: Link
    scores: dict[str, Any] = field(default_factory=dict)
    members: tuple[DenseMemberSpec, ...] = ()
    decides: bool = True


@dataclass(frozen=True, eq=False)
class SecuritySpec:
    """The security-sensitivity score (``triage.security``) and its cross-project scores."""

    scorer: SecurityScorer
    scores: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, eq=False)
class DuplicateSpec:
    """Settings of duplicate search: idf source and title weight (``duplicate_of`` reads the
    artifact's ``duplicate`` calibration)."""

    vectorizer: VectorizerSpec
    title_weight: float
    scores: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, eq=False)
class Artifact:
    classifiers: dict[str, ClassifierSpec]
    duplicates: DuplicateSpec
    metadata: dict[str, Any] = field(default_factory=dict)
    security: SecuritySpec | None = None
    calibrations: dict[str, FieldCalibration] = field(default_factory=dict)

    def classifier(self, name: str) -> ClassifierSpec:
        try:
            return self.classifiers[name]
        except KeyError:
            raise ArtifactError(f"artifact has no classifier {name!r}") from None

    def calibration(self, name: str) -> FieldCalibration:
        try:
            return self.calibrations[name]
        except KeyError:
            raise ArtifactError(f"artifact has no calibration of {name!r}; retrain") from None


def default_model_dir() -> Path:
    """The model shipped inside the package (``ai_pipeline/triage/model``)."""
    return Path(str(resources.files("ai_pipeline.triage").joinpath("model")))


# ----------------------------------------------------------------------------- save


def save_artifact(artifact: Artifact, directory: Path) -> list[Path]:
    """Write the three artifact files into ``directory`` (created if needed); return them."""
    directory.mkdir(parents=True, exist_ok=True)
    vectorizer_names = _name_vectorizers(artifact)
    arrays = _collect_arrays(artifact)
    manifest = _manifest(artifact, vectorizer_names)
    vocab = {
        name: _vectorizer_to_json(spec) for spec, name in _unique_vectorizers(vectorizer_names)
    }
    paths = [directory / name for name in ARTIFACT_FILES]
    paths[0].write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    # Compact: the vocabulary is large and not meant to be read by eye.
    paths[1].write_text(
        json.dumps(vocab, sort_keys=True, separators=(",", ":"), ensure_ascii=False) + "\n",
        encoding="utf-8",
    )
    paths[2].write_bytes(deterministic_npz(arrays))
    paths[3].write_text(_calibration_json(artifact.calibrations), encoding="utf-8")
    return paths


def _calibration_json(calibrations: Mapping[str, FieldCalibration]) -> str:
    """One compact line per field: a retrained field shows as one changed line."""
    lines = [
        f" {json.dumps(name)}: {json.dumps(spec.to_json(), sort_keys=True, separators=(',', ':'))}"
        for name, spec in sorted(calibrations.items())
    ]
    return "{\n" + ",\n".join(lines) + "\n}\n"


def _name_vectorizers(artifact: Artifact) -> list[tuple[VectorizerSpec, str]]:
    """Give every distinct vectorizer the name of its first user; identical ones share it."""
    named: list[tuple[VectorizerSpec, str]] = []
    users = [(name, spec.vectorizer) for name, spec in sorted(artifact.classifiers.items())]
    users.append(("duplicates", artifact.duplicates.vectorizer))
    for user, spec in users:
        shared = next((n for s, n in named if s.same_as(spec)), None)
        named.append((spec, shared or user))
    return named


def _unique_vectorizers(
    named: list[tuple[VectorizerSpec, str]],
) -> list[tuple[VectorizerSpec, str]]:
    seen: dict[str, VectorizerSpec] = {}
    for spec, name in named:
        seen.setdefault(name, spec)
    return [(spec, name) for name, spec in seen.items()]


def _vectorizer_name(named: list[tuple[VectorizerSpec, str]], spec: VectorizerSpec) -> str:
    return next(n for s, n in named if s is spec)


def _manifest(artifact: Artifact, named: list[tuple[VectorizerSpec, str]]) -> dict[str, Any]:
    classifiers = {
        name: {
            "labels": list(spec.labels),
            "link": spec.link,
            "vectorizer": _vectorizer_name(named, spec.vectorizer),
            "decides": spec.decides,
            "scores": spec.scores,
            **({"members": [_member_to_json(m) for m in spec.members]} if spec.members else {}),
        }
        for name, spec in artifact.classifiers.items()
    }
    dup = artifact.duplicates
    return {
        "format_version": FORMAT_VERSION,
        "tokenizer_version": TOKENIZER_VERSION,
        "classifiers": classifiers,
        "duplicates": {
            "vectorizer": _vectorizer_name(named, dup.vectorizer),
            "title_weight": dup.title_weight,
            "scores": dup.scores,
        },
        "metadata": artifact.metadata,
        **({"security": _security_to_json(artifact.security)} if artifact.security else {}),
    }


def _security_to_json(spec: SecuritySpec) -> dict[str, Any]:
    constants = {k: v for k, v in asdict(spec.scorer).items() if k != "direction"}
    return {**constants, "scores": spec.scores}


def _security_from_json(raw: dict[str, Any], arrays: dict[str, npt.NDArray[Any]]) -> SecuritySpec:
    direction = arrays.get(SECURITY_DIRECTION)
    if direction is None or direction.shape != (DIMENSIONS,):
        raise ArtifactError(f"{SECURITY_DIRECTION} is missing or not {DIMENSIONS} values")
    constants = {k: float(v) for k, v in raw.items() if k != "scores"}
    scorer = SecurityScorer(direction=tuple(float(v) for v in direction), **constants)
    return SecuritySpec(scorer, dict(raw.get("scores", {})))


def _member_to_json(member: DenseMemberSpec) -> dict[str, Any]:
    return {
        "kind": "dense",
        "embedding_dimensions": member.embedding_dimensions,
        "embedding_max_tokens": member.embedding_max_tokens,
        "cues_version": member.cues_version,
        "n_features": member.n_features,
    }


def _vectorizer_to_json(spec: VectorizerSpec) -> dict[str, Any]:
    return {
        "analyzer": spec.analyzer,
        "sublinear_tf": spec.sublinear_tf,
        "norm": spec.norm,
        "vocabulary": list(spec.vocabulary),
        # float() gives the shortest repr that round-trips exactly: no precision is lost.
        "idf": [float(v) for v in spec.idf],
    }


def _collect_arrays(artifact: Artifact) -> dict[str, npt.NDArray[Any]]:
    arrays: dict[str, npt.NDArray[Any]] = {}
    for name, spec in artifact.classifiers.items():
        arrays[f"{name}.coef"] = np.ascontiguousarray(spec.coef, dtype=np.float32)
        arrays[f"{name}.intercept"] = np.ascontiguousarray(spec.intercept, dtype=np.float32)
        for i, member in enumerate(spec.members):
            arrays[f"{name}.member{i}.coef"] = np.ascontiguousarray(member.coef, dtype=np.float32)
            arrays[f"{name}.member{i}.intercept"] = np.ascontiguousarray(
                member.intercept, dtype=np.float32
            )
    if artifact.security is not None:
        arrays[SECURITY_DIRECTION] = np.asarray(artifact.security.scorer.direction, np.float32)
    return arrays


def deterministic_npz(arrays: Mapping[str, npt.NDArray[Any]]) -> bytes:
    """An ``.npz`` archive with sorted members and fixed timestamps (``np.savez`` stamps now)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name in sorted(arrays):
            array = arrays[name]
            if array.dtype.hasobject:
                raise ArtifactError(f"{name}: object arrays would need pickle")
            member = io.BytesIO()
            np.lib.format.write_array(member, array, allow_pickle=False)
            info = zipfile.ZipInfo(f"{name}.npy", date_time=_ZIP_EPOCH)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            archive.writestr(info, member.getvalue())
    return buffer.getvalue()


# ----------------------------------------------------------------------------- load


def load_artifact(directory: Path | None = None) -> Artifact:
    """Read an artifact directory (default: the shipped model). Never unpickles anything."""
    directory = directory or default_model_dir()
    missing = [name for name in ARTIFACT_FILES if not (directory / name).is_file()]
    if missing:
        raise ArtifactError(f"{directory}: missing {', '.join(missing)}; run the train command")
    manifest = _read_json(directory / MANIFEST_FILE)
    _check_versions(manifest, directory)
    vectorizers = {
        name: _vectorizer_from_json(raw) for name, raw in _read_json(directory / VOCAB_FILE).items()
    }
    with np.load(directory / WEIGHTS_FILE, allow_pickle=False) as weights:
        arrays = {key: weights[key] for key in weights.files}
    classifiers = {
        name: _classifier_from_json(name, raw, vectorizers, arrays)
        for name, raw in manifest["classifiers"].items()
    }
    dup = manifest["duplicates"]
    duplicates = DuplicateSpec(
        vectorizer=vectorizers[dup["vectorizer"]],
        title_weight=float(dup["title_weight"]),
        scores=dict(dup["scores"]),
    )
    security = _security_from_json(manifest["security"], arrays) if "security" in manifest else None
    calibrations = {
        name: FieldCalibration.from_json(raw)
        for name, raw in _read_json(directory / CALIBRATION_FILE).items()
    }
    return Artifact(classifiers, duplicates, dict(manifest["metadata"]), security, calibrations)


def _read_json(path: Path) -> dict[str, Any]:
    return cast(dict[str, Any], json.loads(path.read_text(encoding="utf-8")))


def _check_versions(manifest: dict[str, Any], directory: Path) -> None:
    if manifest.get("format_version") != FORMAT_VERSION:
        raise ArtifactError(
            f"{directory}: format {manifest.get('format_version')!r} unsupported (this code"
            f" reads {FORMAT_VERSION}); retrain it: ai-pipeline train [--from …] --out {directory}"
        )
    if manifest.get("tokenizer_version") != TOKENIZER_VERSION:
        raise ArtifactError(
            f"{directory}: trained with tokenizer {manifest.get('tokenizer_version')!r}, "
            f"this code has {TOKENIZER_VERSION}; retrain"
        )


def _vectorizer_from_json(raw: dict[str, Any]) -> VectorizerSpec:
    vocabulary = tuple(str(term) for term in raw["vocabulary"])
    idf = np.asarray(raw["idf"], dtype=np.float64)
    if len(vocabulary) != idf.shape[0]:
        raise ArtifactError("vocabulary and idf lengths differ")
    analyzer = raw["analyzer"]
    if analyzer not in ("unigram", "bigram"):
        raise ArtifactError(f"unknown analyzer {analyzer!r}")
    return VectorizerSpec(
        analyzer=analyzer,
        vocabulary=vocabulary,
        idf=idf,
        sublinear_tf=bool(raw["sublinear_tf"]),
        norm="l2",
    )


def _classifier_from_json(
    name: str,
    raw: dict[str, Any],
    vectorizers: dict[str, VectorizerSpec],
    arrays: dict[str, npt.NDArray[Any]],
) -> ClassifierSpec:
    vectorizer = vectorizers[raw["vectorizer"]]
    coef = arrays[f"{name}.coef"].astype(np.float32, copy=False)
    intercept = arrays[f"{name}.intercept"].astype(np.float32, copy=False)
    link = raw["link"]
    if link not in ("softmax", "sigmoid"):
        raise ArtifactError(f"{name}: unknown link {link!r}")
    if coef.ndim != 2 or coef.shape[1] != len(vectorizer.vocabulary):
        raise ArtifactError(f"{name}: coefficients do not match the vocabulary")
    members = tuple(
        _member_from_json(f"{name}.member{i}", member, arrays, len(coef))
        for i, member in enumerate(raw.get("members", []))
    )
    if members and link != "softmax":
        raise ArtifactError(f"{name}: dense members need the softmax link")
    return ClassifierSpec(
        name=name,
        labels=tuple(str(label) for label in raw["labels"]),
        vectorizer=vectorizer,
        coef=coef,
        intercept=intercept,
        link=link,
        scores=dict(raw["scores"]),
        members=members,
        decides=bool(raw.get("decides", True)),
    )


def _member_from_json(
    key: str, raw: dict[str, Any], arrays: dict[str, npt.NDArray[Any]], n_labels: int
) -> DenseMemberSpec:
    if raw.get("kind") != "dense":
        raise ArtifactError(f"{key}: unknown member kind {raw.get('kind')!r}")
    if raw["cues_version"] != CUES_VERSION:
        raise ArtifactError(
            f"{key}: trained with cues {raw['cues_version']!r}, this code has {CUES_VERSION}; "
            "retrain"
        )
    member = DenseMemberSpec(
        coef=arrays[f"{key}.coef"].astype(np.float32, copy=False),
        intercept=arrays[f"{key}.intercept"].astype(np.float32, copy=False),
        embedding_dimensions=int(raw["embedding_dimensions"]),
        embedding_max_tokens=int(raw["embedding_max_tokens"]),
        cues_version=int(raw["cues_version"]),
    )
    expected = (n_labels, member.embedding_dimensions + N_CUES)
    if member.coef.shape != expected or member.intercept.shape != (n_labels,):
        raise ArtifactError(f"{key}: coefficients of shape {member.coef.shape}, not {expected}")
    return member
