"""The offline triage engine: shipped linear models plus rules, numpy/scipy only.

The issue-type model also reads the report's sentence embedding (MiniLM, onnxruntime): one
embedding call per report, exposed as :meth:`LocalTriageEngine.embed` so that other users
(duplicate search) can share the same vector.

Every learned field's confidence is calibrated (``calibration.py``) and a field acts (gets
its label, ``duplicate_of``) only when its score clears the threshold that reached the
operator's precision target (``targets.py``) on held-out data; below it the value is a
suggestion. Priority and severity come from explicit signals (``signals.py``) unless the
artifact carries a model fitted on the team's own labels. Each field says why in
``reasons``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
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
    SecurityBand,
    Severity,
    TriageResult,
)
from ai_pipeline.triage import rules
from ai_pipeline.triage.artifact import Artifact, VectorizerSpec, load_artifact
from ai_pipeline.triage.calibration import logit
from ai_pipeline.triage.duplicates import DuplicateIndex
from ai_pipeline.triage.embeddings import Embedding, report_text
from ai_pipeline.triage.features import MAX_CHARS, tokenize
from ai_pipeline.triage.linear import (
    LinearClassifier,
    SparseVector,
    TfidfFeatures,
    terms_from_tokens,
)
from ai_pipeline.triage.security import SecurityBands, band_thresholds, decide_security
from ai_pipeline.triage.signals import explicit_levels
from ai_pipeline.triage.targets import TriageTargets
from ai_pipeline.triage.type_features import dense_row, type_evidence

LEVELS = ("priority", "severity")


class TextEmbedder(Protocol):
    """What the engine needs of :class:`~ai_pipeline.triage.embeddings.Embedder`."""

    max_tokens: int

    def embed(self, texts: Sequence[str]) -> npt.NDArray[np.float32]: ...


@dataclass
class _Decision:
    """What is decided field by field, before the result is assembled."""

    confidence: dict[str, float] = field(default_factory=dict)
    reasons: dict[str, str] = field(default_factory=dict)
    suggested: list[str] = field(default_factory=list)


class LocalTriageEngine:
    """Implements ``TriageEngine``; :meth:`decide` is pure, no I/O after :meth:`load`."""

    name: str = "local"

    def __init__(
        self,
        artifact: Artifact,
        embedder: TextEmbedder | None = None,
        targets: TriageTargets | None = None,
    ) -> None:
        """``embedder`` defaults to the service's MiniLM :class:`Embedder` (one thread), built
        here once when a classifier needs embeddings. ``targets``: the precision each field
        must have reached to act (default: 0.9, security's private band 0.8)."""
        self.artifact = artifact
        self.targets = targets or TriageTargets()
        features = _SharedFeatures()
        # Priority and severity models fitted on another project's labels are not run.
        self._classifiers = {
            name: LinearClassifier(spec, features.get(spec.vectorizer))
            for name, spec in artifact.classifiers.items()
            if name == "type" or (name in LEVELS and spec.decides)
        }
        if "type" not in self._classifiers:
            raise ValueError("artifact lacks the type classifier")
        if artifact.security is None:
            raise ValueError("artifact lacks the security score; run the train command")
        self._security = artifact.security.scorer
        self._embedder = embedder or _default_embedder(artifact)
        self._calibrations = {
            name: artifact.calibration(name)
            for name in ("type", "security", "duplicate", *self._team_levels())
        }
        # Raw-score thresholds (``math.inf``: the field never acts at this target).
        self.thresholds: dict[str, float] = {
            name: self._calibrations[name].threshold(self.targets.precision(name))
            for name in ("type", "duplicate", *self._team_levels())
        }
        self.security_bands: SecurityBands = band_thresholds(
            self._calibrations["security"],
            self.targets.precision("security"),
            self.targets.security_review_recall,
        )

    @property
    def embedder(self) -> TextEmbedder | None:
        """The embedder this engine reads embeddings with (shareable with another engine)."""
        return self._embedder

    def _team_levels(self) -> list[str]:
        """Priority and severity models fitted on the team's own labels (they decide)."""
        return [name for name in LEVELS if name in self._classifiers]

    @classmethod
    def load(
        cls,
        path: Path | None = None,
        embedder: TextEmbedder | None = None,
        targets: TriageTargets | None = None,
    ) -> LocalTriageEngine:
        """Load the artifact at ``path``, by default the model shipped with the package."""
        return cls(load_artifact(path), embedder, targets)

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
        tokens = tokenize(text)
        vectors = self._vectors(tokens)
        if embedding is None and self._embedder is not None:
            embedding = self.embed_text(text)
        decision = _Decision()
        issue_type = self._decide_type(text, vectors, embedding, decision)
        security = decide_security(
            self._security, self._calibrations["security"], self.security_bands, text, embedding
        )
        sensitive = security.band is not SecurityBand.PUBLIC
        if security.confidence is not None:  # a rule's band has a reason, no measured odds
            decision.confidence["security"] = _round(security.confidence)
        decision.reasons["security"] = security.reason
        priority, severity = self._decide_levels(
            report.title, text, security.urgent, vectors, decision
        )
        category = self._decide_category(report.title, text, tokens, decision)
        ranked = _usable_candidates(report, candidates)
        duplicate_of = self._decide_duplicate(ranked, decision)
        missing = rules.missing_information(report, issue_type)
        labels = rules.compose_labels(
            rules.LabelInputs(
                issue_type=issue_type,
                priority=priority,
                severity=severity,
                category=category,
                security_sensitive=sensitive,
                missing_information=missing,
                suggested=decision.suggested,
                duplicate=duplicate_of is not None,
            )
        )
        return TriageResult(
            type=issue_type,
            priority=priority,
            severity=severity,
            category=category,
            labels=labels,
            duplicate_candidates=ranked,
            duplicate_of=duplicate_of,
            missing_information=missing,
            security_band=security.band,
            assignee_suggestion=None,  # the router adds one (triage.routing)
            confidence=decision.confidence,
            reasons=decision.reasons,
            suggested=decision.suggested,
            engine=self.name,
        )

    def _decide_type(
        self,
        text: str,
        vectors: dict[int, SparseVector],
        embedding: Embedding | None,
        decision: _Decision,
    ) -> IssueType:
        classifier = self._classifiers["type"]
        dense = None
        if classifier.needs_dense:
            if embedding is None:
                embedding = self.embed_text(text)
            dense = dense_row(embedding, text)
        label, probability, _ = classifier.best(vectors[id(classifier.features)], dense)
        self._calibrated("type", float(logit(probability)), decision)
        evidence = " + ".join(type_evidence(text, label)) or "its wording"
        decision.reasons["type"] = f"{evidence} → {label}"
        return IssueType(label)

    def _decide_levels(
        self,
        title: str,
        text: str,
        security_urgent: bool,
        vectors: dict[int, SparseVector],
        decision: _Decision,
    ) -> tuple[Priority | None, Severity | None]:
        """A team's own model where it has one; otherwise explicit signals, or nothing."""
        explicit = explicit_levels(title, text, security_urgent)
        values: dict[str, str | None] = {
            "priority": explicit.priority.value if explicit.priority else None,
            "severity": explicit.severity.value if explicit.severity else None,
        }
        decision.reasons.update(explicit.reasons)
        for name in self._team_levels():
            classifier = self._classifiers[name]
            label, probability, _ = classifier.best(vectors[id(classifier.features)])
            self._calibrated(name, float(logit(probability)), decision)
            values[name] = label
            decision.reasons[name] = f"your team's labelled issues → {label}"
        priority, severity = values["priority"], values["severity"]
        return (
            Priority(priority) if priority else None,
            Severity(severity) if severity else None,
        )

    def _decide_category(
        self, title: str, text: str, tokens: list[str], decision: _Decision
    ) -> str:
        guess = rules.guess_category(title, text, tokens)
        if guess.category == rules.OTHER:
            decision.reasons["category"] = "no area keyword"
            return guess.category
        terms = rules.category_terms(tokenize(title) + tokens, guess.category)
        decision.reasons["category"] = ", ".join(f"'{t}'" for t in terms) + f" → {guess.category}"
        if guess.confidence < rules.CATEGORY_CONFIDENCE_THRESHOLD:
            decision.suggested.append("category")  # keywords of other areas as strong
        return guess.category

    def _decide_duplicate(
        self, ranked: list[DuplicateCandidate], decision: _Decision
    ) -> DuplicateCandidate | None:
        """The best candidate when its similarity clears the ``duplicate_of`` threshold."""
        if not ranked:
            return None
        best = ranked[0]
        matched = best.similarity >= self.thresholds["duplicate"]
        probability = self._calibrations["duplicate"].confidence(best.similarity)
        decision.confidence["duplicate"] = _round(probability if matched else 1.0 - probability)
        where = f"#{best.issue_number}" if best.issue_number else f"report {best.bug_report_id}"
        decision.reasons["duplicate"] = (
            f"matches {where} ({best.similarity:.2f}) → duplicate"
            if matched
            else f"closest is {where} ({best.similarity:.2f}): below the duplicate bar"
        )
        return best if matched else None

    def _calibrated(self, name: str, raw: float, decision: _Decision) -> None:
        decision.confidence[name] = _round(self._calibrations[name].confidence(raw))
        if raw < self.thresholds[name]:
            decision.suggested.append(name)

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


def _round(value: float) -> float:
    # Confidences are displayed and logged; 4 decimals are plenty and keep payloads short.
    return round(float(np.clip(value, 0.0, 1.0)), 4)
