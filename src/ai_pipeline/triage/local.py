"""The offline triage engine: shipped linear models plus rules, numpy/scipy only.

The issue-type model also reads the report's sentence embedding (MiniLM, onnxruntime): one
embedding call per report, exposed as :meth:`LocalTriageEngine.embed` so that other users
(duplicate search) can share the same vector.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np
import numpy.typing as npt

from ai_pipeline.agents.offload import off_loop
from ai_pipeline.domain.models import (
    BugReport,
    DuplicateCandidate,
    IssueType,
    Priority,
    Severity,
    TriageResult,
)
from ai_pipeline.triage import rules
from ai_pipeline.triage.artifact import Artifact, VectorizerSpec, load_artifact
from ai_pipeline.triage.duplicates import DuplicateIndex
from ai_pipeline.triage.embeddings import Embedding, report_text
from ai_pipeline.triage.features import MAX_CHARS, tokenize
from ai_pipeline.triage.linear import (
    LinearClassifier,
    SparseVector,
    TfidfFeatures,
    terms_from_tokens,
)
from ai_pipeline.triage.security import decide_security
from ai_pipeline.triage.type_features import dense_row

CLASSIFIERS = ("type", "priority", "severity")
# Fields whose confidence is compared with a threshold to decide ``needs-triage``.
THRESHOLDED_FIELDS = ("type", "priority", "severity", "category")
# ``SecurityScorer.confidence`` reads 0.5 exactly at the score threshold.
SECURITY_CONFIDENCE_AT_THRESHOLD = 0.5


class TextEmbedder(Protocol):
    """What the engine needs of :class:`~ai_pipeline.triage.embeddings.Embedder`."""

    max_tokens: int

    def embed(self, texts: Sequence[str]) -> npt.NDArray[np.float32]: ...


@dataclass(frozen=True)
class _Fields:
    issue_type: IssueType
    priority: Priority
    severity: Severity
    category: str
    security_sensitive: bool
    confidence: dict[str, float]


class LocalTriageEngine:
    """Implements ``TriageEngine``; :meth:`decide` is pure, no I/O after :meth:`load`."""

    name: str = "local"

    def __init__(self, artifact: Artifact, embedder: TextEmbedder | None = None) -> None:
        """``embedder`` defaults to the service's MiniLM :class:`Embedder` (one thread), built
        here once when a classifier needs embeddings."""
        self.artifact = artifact
        features = _SharedFeatures()
        self._classifiers = {
            name: LinearClassifier(spec, features.get(spec.vectorizer))
            for name, spec in artifact.classifiers.items()
            if name in CLASSIFIERS
        }
        missing = set(CLASSIFIERS) - set(self._classifiers)
        if missing:
            raise ValueError(f"artifact lacks classifiers: {', '.join(sorted(missing))}")
        if artifact.security is None:
            raise ValueError("artifact lacks the security score; run the train command")
        self._security = artifact.security.scorer
        self._embedder = embedder or _default_embedder(artifact)
        self._duplicate_threshold = artifact.duplicates.threshold
        self.thresholds: dict[str, float] = {
            **{
                name: artifact.classifier(name).thresholds["confidence"]
                for name in ("type", "priority", "severity")
            },
            "category": rules.CATEGORY_CONFIDENCE_THRESHOLD,
            "security": SECURITY_CONFIDENCE_AT_THRESHOLD,
            "duplicate": self._duplicate_threshold,
        }

    @classmethod
    def load(
        cls, path: Path | None = None, embedder: TextEmbedder | None = None
    ) -> LocalTriageEngine:
        """Load the artifact at ``path``, by default the model shipped with the package."""
        return cls(load_artifact(path), embedder)

    def embed(self, report: BugReport) -> Embedding:
        """The report's unit sentence embedding: the vector the type model reads, the same
        as the triage agent's (``report_text`` of the full text), shareable with duplicate
        search. Pass it to :meth:`decide` to avoid a second embedding call."""
        return self.embed_text(_model_text(report))

    def embed_text(self, text: str) -> Embedding:
        """Unit embedding of a model text (``report.full_text()`` bounded to ``MAX_CHARS``)."""
        if self._embedder is None:
            raise ValueError("this engine has no embedder (its artifact needs none)")
        row: Embedding = self._embedder.embed([report_text(text)])[0]
        return row

    def new_duplicate_index(self) -> DuplicateIndex:
        """An empty duplicate index using this artifact's idf and title weight."""
        return DuplicateIndex.from_artifact(self.artifact)

    async def triage(
        self,
        report: BugReport,
        candidates: list[DuplicateCandidate],
        embedding: Embedding | None = None,
    ) -> TriageResult:
        # Models and rules read the report's text: on a worker, within its budget.
        return await off_loop(self.decide, report, candidates, embedding)

    def decide(
        self,
        report: BugReport,
        candidates: list[DuplicateCandidate],
        embedding: Embedding | None = None,
    ) -> TriageResult:
        """The synchronous decision (evaluation, benchmarks and the LLM fallback call it)."""
        # Models and rules read the same bounded prefix: the tail of a huge report is logs,
        # and scanning 128k characters with the rule regexes would cost ~30 ms.
        text = _model_text(report)
        fields = self._decide_fields(report.title, text, embedding)
        ranked = _usable_candidates(report, candidates)
        duplicate_of = self._duplicate_of(ranked)
        confidence = {**fields.confidence, "duplicate": _duplicate_confidence(ranked, duplicate_of)}
        missing = rules.missing_information(report, fields.issue_type)
        uncertain = [f for f in THRESHOLDED_FIELDS if confidence[f] < self.thresholds[f]]
        labels = rules.compose_labels(
            rules.LabelInputs(
                issue_type=fields.issue_type,
                priority=fields.priority,
                severity=fields.severity,
                category=fields.category,
                security_sensitive=fields.security_sensitive,
                missing_information=missing,
                uncertain_fields=uncertain,
                duplicate=duplicate_of is not None,
            )
        )
        return TriageResult(
            type=fields.issue_type,
            priority=fields.priority,
            severity=fields.severity,
            category=fields.category,
            labels=labels,
            duplicate_candidates=ranked,
            duplicate_of=duplicate_of,
            missing_information=missing,
            security_sensitive=fields.security_sensitive,
            assignee_suggestion=None,  # routing is a later issue
            confidence=confidence,
            engine=self.name,
        )

    def _decide_fields(self, title: str, text: str, embedding: Embedding | None = None) -> _Fields:
        """Models and rules on the report text; the text is tokenised once for all of them."""
        tokens = tokenize(text)
        vectors = self._vectors(tokens)
        if embedding is None and self._embedder is not None:
            embedding = self.embed_text(text)
        issue_type, type_conf = self._predict_type(text, vectors, embedding)
        priority, priority_conf = self._predict("priority", vectors)
        severity, severity_conf = self._predict("severity", vectors)
        category = rules.guess_category(title, text, tokens)
        security = decide_security(self._security, text, embedding)
        return _Fields(
            issue_type=IssueType(issue_type),
            priority=Priority(priority),
            severity=Severity(severity),
            category=category.category,
            security_sensitive=security.sensitive,
            confidence={
                "type": type_conf,
                "priority": priority_conf,
                "severity": severity_conf,
                "category": category.confidence,
                "security": _round(security.confidence),
            },
        )

    def _duplicate_of(self, ranked: list[DuplicateCandidate]) -> DuplicateCandidate | None:
        """The best candidate when it is similar enough (threshold calibrated on SeaMonkey)."""
        if ranked and ranked[0].similarity >= self._duplicate_threshold:
            return ranked[0]
        return None

    def _vectors(self, tokens: list[str]) -> dict[int, SparseVector]:
        """One tf-idf vector per distinct vectorizer (priority and severity share one)."""
        vectors: dict[int, SparseVector] = {}
        terms: dict[str, list[str]] = {}  # per analyzer: bigrams are built once
        for classifier in self._classifiers.values():
            features = classifier.features
            if id(features) not in vectors:
                if features.analyzer not in terms:
                    terms[features.analyzer] = terms_from_tokens(features.analyzer, tokens)
                vectors[id(features)] = features.vector_from_terms(terms[features.analyzer])
        return vectors

    def _predict_type(
        self,
        text: str,
        vectors: dict[int, SparseVector],
        embedding: Embedding | None,
    ) -> tuple[str, float]:
        classifier = self._classifiers["type"]
        dense = None
        if classifier.needs_dense:
            if embedding is None:
                embedding = self.embed_text(text)
            dense = dense_row(embedding, text)
        label, probability, _ = classifier.best(vectors[id(classifier.features)], dense)
        return label, _round(probability)

    def _predict(self, name: str, vectors: dict[int, SparseVector]) -> tuple[str, float]:
        classifier = self._classifiers[name]
        label, probability, _ = classifier.best(vectors[id(classifier.features)])
        return label, _round(probability)


def _model_text(report: BugReport) -> str:
    # Models and rules read the same bounded prefix: the tail of a huge report is logs,
    # and scanning 128k characters with the rule regexes would cost ~30 ms.
    return report.full_text()[:MAX_CHARS]


def embedding_max_tokens(artifact: Artifact) -> int | None:
    """The token budget the artifact's embedding models were trained with (None: no such
    model). The duplicate index and the security score read the same vector."""
    specs = artifact.classifiers.values()
    tokens = {member.embedding_max_tokens for spec in specs for member in spec.members}
    if len(tokens) > 1:
        raise ValueError("classifiers need embeddings of different token budgets")
    return tokens.pop() if tokens else None


def _default_embedder(artifact: Artifact) -> TextEmbedder | None:
    tokens = embedding_max_tokens(artifact)
    if tokens is None:
        return None
    from ai_pipeline.triage.embeddings import Embedder

    return Embedder(max_tokens=tokens, threads=1)


class _SharedFeatures:
    """One ``TfidfFeatures`` per distinct vectorizer, so a report is vectorised once for
    classifiers fitted on the same texts (priority and severity)."""

    def __init__(self) -> None:
        self._built: list[TfidfFeatures] = []

    def get(self, spec: VectorizerSpec) -> TfidfFeatures:
        for features in self._built:
            if features.spec is spec or features.spec.same_as(spec):
                return features
        self._built.append(TfidfFeatures(spec))
        return self._built[-1]


def _usable_candidates(
    report: BugReport, candidates: list[DuplicateCandidate]
) -> list[DuplicateCandidate]:
    """Candidates other than the report itself, best first."""
    others = [c for c in candidates if c.bug_report_id != report.id]
    return sorted(others, key=lambda c: -c.similarity)


def _duplicate_confidence(
    ranked: list[DuplicateCandidate], duplicate_of: DuplicateCandidate | None
) -> float:
    """How sure the duplicate decision is: the match's similarity when one is claimed,
    otherwise how far the best candidate is from being a match."""
    if duplicate_of is not None:
        return _round(duplicate_of.similarity)
    best = ranked[0].similarity if ranked else 0.0
    return _round(1.0 - best)


def _round(value: float) -> float:
    # Confidences are displayed and logged; 4 decimals are plenty and keep payloads short.
    return round(float(np.clip(value, 0.0, 1.0)), 4)
