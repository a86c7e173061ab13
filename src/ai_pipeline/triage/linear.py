"""Inference from the artifact with numpy/scipy only: tf-idf features and linear classifiers.

This reproduces, for the settings training uses, scikit-learn's
``TfidfVectorizer(analyzer=..., sublinear_tf=..., norm="l2").transform`` followed by
``LogisticRegression.decision_function`` / ``predict_proba`` / ``predict``. The equivalence is
pinned by a unit test, so the service never has to import scikit-learn.

A classifier with dense members (issue type) also needs each report's dense row
(``type_features.dense_row``: embedding, then cues); its probabilities are the mean of the
tf-idf model's and the members'.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp  # type: ignore[import-untyped, unused-ignore]

from ai_pipeline.triage.artifact import (
    Analyzer,
    ClassifierSpec,
    DenseMemberSpec,
    FloatArray,
    VectorizerSpec,
)
from ai_pipeline.triage.features import analyze, analyze_unigrams, with_bigrams

IntArray = npt.NDArray[np.int32]

ANALYZERS: dict[Analyzer, Callable[[str], list[str]]] = {
    "unigram": analyze_unigrams,
    "bigram": analyze,
}


def terms_from_tokens(analyzer: Analyzer, tokens: list[str]) -> list[str]:
    """The analyzer's terms from already-tokenised text: lets callers tokenise a report once."""
    return tokens if analyzer == "unigram" else with_bigrams(tokens)


class SparseVector:
    """One l2-normalised tf-idf row: sorted column ``indices`` and their ``values``."""

    __slots__ = ("indices", "values")

    def __init__(self, indices: IntArray, values: FloatArray) -> None:
        self.indices = indices
        self.values = values

    @property
    def is_empty(self) -> bool:
        return self.indices.size == 0


class TfidfFeatures:
    """The tf-idf transform of one fitted vectorizer."""

    def __init__(self, spec: VectorizerSpec) -> None:
        self.spec = spec
        self.analyzer = spec.analyzer
        self.n_features = len(spec.vocabulary)
        self._index = {term: i for i, term in enumerate(spec.vocabulary)}
        self._idf = spec.idf

    def vector(self, text: str) -> SparseVector:
        return self.vector_from_terms(ANALYZERS[self.analyzer](text))

    def vector_from_tokens(self, tokens: list[str]) -> SparseVector:
        return self.vector_from_terms(terms_from_tokens(self.analyzer, tokens))

    def vector_from_terms(self, terms: list[str]) -> SparseVector:
        index = self._index
        columns: list[int] = []
        counts: list[int] = []
        for term, count in Counter(terms).items():
            column = index.get(term)
            if column is not None:
                columns.append(column)
                counts.append(count)
        order = np.argsort(np.array(columns, dtype=np.int32), kind="stable")
        indices = np.array(columns, dtype=np.int32)[order]
        tf = np.array(counts, dtype=np.float64)[order]
        return SparseVector(indices, self._weigh(indices, tf))

    def _weigh(self, indices: IntArray, tf: FloatArray) -> FloatArray:
        # Same order of operations as scikit-learn: 1 + log(tf), times idf, then l2 norm.
        if self.spec.sublinear_tf:
            tf = np.log(tf) + 1.0
        values = tf * self._idf[indices]
        norm = float(np.sqrt(np.dot(values, values)))
        return values / norm if norm > 0.0 else values

    def transform(self, texts: Sequence[str]) -> sp.csr_matrix:
        return rows_to_csr([self.vector(text) for text in texts], self.n_features)


def rows_to_csr(rows: Sequence[SparseVector], n_features: int) -> sp.csr_matrix:
    """Stack sparse rows into a CSR matrix (float64)."""
    indptr = np.zeros(len(rows) + 1, dtype=np.int64)
    np.cumsum([row.indices.size for row in rows], out=indptr[1:])
    indices = np.concatenate([row.indices for row in rows]) if rows else np.empty(0, np.int32)
    values = np.concatenate([row.values for row in rows]) if rows else np.empty(0)
    return sp.csr_matrix((values, indices, indptr), shape=(len(rows), n_features))


def softmax(scores: FloatArray) -> FloatArray:
    shifted = scores - scores.max(axis=-1, keepdims=True)
    exp = np.exp(shifted)
    result: FloatArray = exp / exp.sum(axis=-1, keepdims=True)
    return result


def sigmoid(scores: FloatArray) -> FloatArray:
    result: FloatArray = 0.5 * (1.0 + np.tanh(0.5 * scores))  # overflow-free logistic
    return result


class DenseMember:
    """Softmax inference of one :class:`DenseMemberSpec` (float64, as scikit-learn sums)."""

    def __init__(self, spec: DenseMemberSpec) -> None:
        self.spec = spec
        self._coef = spec.coef.astype(np.float64)
        self._intercept = spec.intercept.astype(np.float64)

    def predict_proba(self, dense: FloatArray) -> FloatArray:
        """Probabilities for dense rows (2-d) or one dense row (1-d)."""
        scores: FloatArray = np.atleast_2d(dense) @ self._coef.T + self._intercept
        proba = softmax(scores)
        return proba if dense.ndim == 2 else proba[0]


class LinearClassifier:
    """``LogisticRegression`` inference from a :class:`ClassifierSpec`.

    With dense members, every probability method needs the dense rows as well (``dense``).
    """

    def __init__(self, spec: ClassifierSpec, features: TfidfFeatures | None = None) -> None:
        self.spec = spec
        self.name = spec.name
        self.labels = spec.labels
        self.features = features or TfidfFeatures(spec.vectorizer)
        # float32 on disk; computing in float64 keeps the sums as scikit-learn does them.
        self._coef = spec.coef.astype(np.float64)
        self._intercept = spec.intercept.astype(np.float64)
        self.members = tuple(DenseMember(member) for member in spec.members)

    @property
    def needs_dense(self) -> bool:
        """Whether predictions need each report's dense row (embedding and cues)."""
        return bool(self.members)

    # -- batch (evaluation, tests)

    def decision_function(self, matrix: sp.csr_matrix) -> FloatArray:
        """Scores of the tf-idf model alone (members have their own scores)."""
        scores: FloatArray = np.asarray(matrix @ self._coef.T) + self._intercept
        return scores

    def predict_proba(self, matrix: sp.csr_matrix, dense: FloatArray | None = None) -> FloatArray:
        return self._combine(self._link(self.decision_function(matrix)), dense)

    def predict(self, matrix: sp.csr_matrix, dense: FloatArray | None = None) -> list[str]:
        return [self.labels[i] for i in np.argmax(self.predict_proba(matrix, dense), axis=1)]

    def predict_texts(self, texts: Sequence[str], dense: FloatArray | None = None) -> list[str]:
        return self.predict(self.features.transform(texts), dense)

    # -- single report (service path)

    def proba_vector(self, vector: SparseVector, dense: FloatArray | None = None) -> FloatArray:
        """Class probabilities for one tf-idf row (and dense row), in ``labels`` order."""
        scores: FloatArray = self._coef[:, vector.indices] @ vector.values + self._intercept
        proba: FloatArray = self._link(scores[np.newaxis, :])[0]
        return self._combine(proba, dense)

    def best(
        self, vector: SparseVector, dense: FloatArray | None = None
    ) -> tuple[str, float, FloatArray]:
        """The most probable label, its probability, and all probabilities."""
        proba = self.proba_vector(vector, dense)
        best = int(np.argmax(proba))
        return self.labels[best], float(proba[best]), proba

    def _combine(self, proba: FloatArray, dense: FloatArray | None) -> FloatArray:
        if not self.members:
            return proba
        if dense is None:
            raise ValueError(f"classifier {self.name!r} needs the dense rows (embedding, cues)")
        total = proba.copy()
        for member in self.members:
            total += member.predict_proba(dense)
        result: FloatArray = total / (1 + len(self.members))
        return result

    def _link(self, scores: FloatArray) -> FloatArray:
        if self.spec.link == "softmax":
            return softmax(scores)
        positive = sigmoid(scores[:, 0])
        return np.stack([1.0 - positive, positive], axis=1)
