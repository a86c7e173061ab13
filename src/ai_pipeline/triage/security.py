"""Security sensitivity that transfers to projects the model has never seen.

A classifier fitted on one project's security reports learns that project's words (its
component names, its reporters' habits) and its base rate; on another project it flags
almost everything or almost nothing. This score has no learned weights, only two signals
that mean the same thing everywhere:

- how close the report's sentence embedding is to a fixed set of descriptions of security
  problems (the mean cosine equals the dot product with the mean of the description
  vectors, so one 384-vector is stored);
- how many distinct kinds of security vocabulary the text uses (``log1p`` of the hits per
  word group, summed, so one repeated word cannot dominate).

Each is standardised by its mean and spread over unlabelled training reports, the two are
added, and the threshold is the one maximising F2 on the training projects (a missed
security report is published; a false alarm costs a maintainer a look). Leave-one-project-
out on FARSEC, training never sees the scored project.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from ai_pipeline.triage.embeddings import DIMENSIONS
from ai_pipeline.triage.rules import STRONG_RULE_CONFIDENCE, SecurityDecision, strong_security_terms

FloatArray = npt.NDArray[np.float64]
SECURITY_FILE = "security.json"
SECURITY_F_BETA = 2.0

# Written from the OWASP/CWE vocabulary, not from any project's reports.
PROTOTYPES = (
    "security vulnerability that allows an attacker to exploit the system",
    "cross-site scripting XSS or CSRF attack in the web page",
    "SQL injection or command injection because input is not sanitized or escaped",
    "authentication bypass: user can access resources without logging in",
    "authorization problem: user gets access or privileges they should not have",
    "password or credentials shown in plain text in the logs or in the URL",
    "secret key, private key or password is exposed or leaked",
    "sensitive information disclosure to unauthorized users",
    "enable Kerberos security, keytabs and principals for a secure cluster",
    "SSL/TLS encryption and certificates for secure communication over HTTPS",
    "file or directory permissions are wrong, world readable or owned by root",
    "denial of service, integer or buffer overflow, resource exhaustion",
    "session fixation or session hijacking, insecure cookies",
)

WORD_GROUPS = {
    "security": r"secur\w*|insecure",
    "vulnerability": r"vulnerab\w*|exploit\w*|attack\w*|malicious|cve-\d+-\d+",
    "web": r"xss|csrf|xsrf|cross[- ]site|injection|sanitiz\w*|escap\w*|clickjack\w*|traversal"
    r"|redirect",
    "authentication": r"authenticat\w*|authori[sz]\w*|auth|login|log in|sign ?in|logon"
    r"|unauthori[sz]ed|kerberos|kerberized|ldap|jaas|principal\w*|keytab\w*|sso|spnego|krb5?"
    r"|realm",
    "credentials": r"password\w*|passwd|credential\w*|secret\w*|private key|key ?store"
    r"|trust ?store|passphrase|token\w*",
    "crypto": r"encrypt\w*|decrypt\w*|cipher\w*|crypt\w*|ssl|tls|https|certificate\w*|pgp"
    r"|signature|hash\w*|md5|sha1?",
    "permissions": r"permission\w*|privilege\w*|access control|acl\w*|role\w*|chmod|owner|sudo"
    r"|root|umask|readable|world[- ]?writ\w*",
    "exposure": r"leak\w*|expos\w*|disclos\w*|plain ?text|clear ?text|mask\w*|hidden|reveal\w*"
    r"|in (?:the )?logs?",
    "denial of service": r"denial of service|dos|overflow\w*|infinite loop|out of memory|oom"
    r"|exhaust\w*|thread[- ]safe\w*|race condition|deadlock",
    "session": r"session\w*|cookie\w*|fixation",
}
_GROUPS = tuple(re.compile(r"\b(?:" + pattern + r")\b") for pattern in WORD_GROUPS.values())


def decide_security(
    scorer: SecurityScorer, text: str, embedding: npt.NDArray[np.float32] | None
) -> SecurityDecision:
    """Sensitive when the score clears the threshold, or on a strong keyword (a CVE id,
    "XSS", "SQL injection"…) whatever the score. Without an embedding (an engine built
    without an embedder) the semantic half reads a neutral, all-zero vector."""
    vector = embedding if embedding is not None else np.zeros(DIMENSIONS, np.float32)
    score = scorer.score(vector, text)
    confidence = scorer.confidence(score)
    if strong_security_terms(text):
        return SecurityDecision(True, max(STRONG_RULE_CONFIDENCE, confidence), "keyword")
    if score >= scorer.threshold:
        return SecurityDecision(True, confidence, "score")
    return SecurityDecision(False, 1.0 - confidence, "none")


def vocabulary_score(text: str) -> float:
    """Sum over word groups of log1p(hits): breadth of security vocabulary in ``text``."""
    lowered = text.lower()
    return float(sum(np.log1p(len(group.findall(lowered))) for group in _GROUPS))


@dataclass(frozen=True)
class SecurityScorer:
    direction: tuple[float, ...]  # mean of the prototype embeddings
    similarity_mean: float
    similarity_std: float
    vocabulary_mean: float
    vocabulary_std: float
    threshold: float

    def score(self, embedding: npt.NDArray[np.float32], text: str) -> float:
        similarity = float(np.dot(np.asarray(self.direction, dtype=np.float32), embedding))
        return (similarity - self.similarity_mean) / self.similarity_std + (
            vocabulary_score(text) - self.vocabulary_mean
        ) / self.vocabulary_std

    def scores(self, embeddings: npt.NDArray[np.float32], texts: Sequence[str]) -> FloatArray:
        return np.array([self.score(e, t) for e, t in zip(embeddings, texts, strict=True)])

    def confidence(self, score: float) -> float:
        """A 0–1 reading of the score for the triage table (0.5 at the threshold)."""
        return float(1.0 / (1.0 + np.exp(-(score - self.threshold))))

    def save(self, directory: Path) -> Path:
        path = directory / SECURITY_FILE
        path.write_text(json.dumps(asdict(self), indent=1) + "\n", encoding="utf-8")
        return path

    @classmethod
    def load(cls, directory: Path) -> SecurityScorer:
        raw = json.loads((directory / SECURITY_FILE).read_text(encoding="utf-8"))
        raw["direction"] = tuple(float(v) for v in raw["direction"])
        return cls(**raw)


def fit_scorer(
    direction: npt.NDArray[np.float32],
    embeddings: npt.NDArray[np.float32],
    texts: Sequence[str],
    positive: npt.NDArray[np.bool_],
) -> SecurityScorer:
    """Standardise both signals over ``texts`` and pick the F2-best threshold."""
    similarity = embeddings @ direction
    vocabulary = np.array([vocabulary_score(t) for t in texts])
    unscaled = SecurityScorer(
        direction=tuple(round(float(v), 7) for v in direction),
        similarity_mean=round(float(similarity.mean()), 7),
        similarity_std=round(float(similarity.std()), 7),
        vocabulary_mean=round(float(vocabulary.mean()), 7),
        vocabulary_std=round(float(vocabulary.std()), 7),
        threshold=0.0,
    )
    scores = unscaled.scores(embeddings, texts)
    return SecurityScorer(**{**asdict(unscaled), "threshold": f_beta_threshold(positive, scores)})


def prototype_direction(prototype_embeddings: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
    return np.asarray(prototype_embeddings.mean(axis=0), dtype=np.float32)


def f_beta_threshold(
    positive: npt.NDArray[np.bool_], scores: FloatArray, beta: float = SECURITY_F_BETA
) -> float:
    """The score threshold maximising F-beta (ties: the higher threshold)."""
    best_f, best_threshold = -1.0, float(scores.max()) if len(scores) else 0.0
    order = np.argsort(-scores, kind="stable")
    ranked, hits = scores[order], np.cumsum(positive[order])
    total = max(int(positive.sum()), 1)
    for i in range(len(ranked)):
        if i + 1 < len(ranked) and ranked[i + 1] == ranked[i]:
            continue  # thresholds sit between distinct scores
        tp, flagged = float(hits[i]), i + 1
        f = (1 + beta**2) * tp / max((1 + beta**2) * tp + beta**2 * (total - tp) + flagged - tp, 1)
        if f > best_f:
            best_f, best_threshold = f, float(ranked[i])
    return round(best_threshold, 6)


@dataclass(frozen=True)
class ProjectResult:
    project: str
    threshold: float
    tp: int
    fp: int
    fn: int

    @property
    def precision(self) -> float:
        return self.tp / max(self.tp + self.fp, 1)

    @property
    def recall(self) -> float:
        return self.tp / max(self.tp + self.fn, 1)

    def as_dict(self) -> dict[str, float | int | str]:
        return {
            "project": self.project,
            "threshold": round(self.threshold, 4),
            "precision": round(self.precision, 4),
            "recall": round(self.recall, 4),
            "tp": self.tp,
            "fp": self.fp,
            "fn": self.fn,
            "flagged": self.tp + self.fp,
        }


def leave_one_project_out(
    direction: npt.NDArray[np.float32],
    embeddings: npt.NDArray[np.float32],
    texts: Sequence[str],
    positive: npt.NDArray[np.bool_],
    projects: Sequence[str],
    also_flagged: npt.NDArray[np.bool_] | None = None,
) -> list[ProjectResult]:
    """Fit on all projects but one (scaling and threshold), score the one left out.

    ``also_flagged``: reports a rule flags whatever the score (the engine's keywords)."""
    groups = np.array(projects)
    results = []
    for project in sorted(set(projects)):
        train, test = np.flatnonzero(groups != project), np.flatnonzero(groups == project)
        scorer = fit_scorer(
            direction, embeddings[train], [texts[int(i)] for i in train], positive[train]
        )
        flagged = scorer.scores(embeddings[test], [texts[int(i)] for i in test]) >= scorer.threshold
        if also_flagged is not None:
            flagged |= also_flagged[test]
        truth = positive[test]
        results.append(
            ProjectResult(
                project,
                scorer.threshold,
                tp=int((flagged & truth).sum()),
                fp=int((flagged & ~truth).sum()),
                fn=int((~flagged & truth).sum()),
            )
        )
    return results
