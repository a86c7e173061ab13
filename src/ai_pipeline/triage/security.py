"""Security sensitivity that transfers to projects the model has never seen, in three bands.

A classifier fitted on one project's security reports learns that project's words (its
component names, its reporters' habits) and its base rate; on another project it flags
almost everything or almost nothing. This score has no learned weights, only two signals
that mean the same thing everywhere:

- how close the report's sentence embedding is to a fixed set of descriptions of security
  problems (the mean cosine equals the dot product with the mean of the description
  vectors, so one 384-vector is stored);
- how many distinct kinds of security vocabulary the text uses (``log1p`` of the hits per
  word group, summed, so one repeated word cannot dominate).

Each is standardised by its mean and spread over unlabelled training reports and the two are
added. The score is calibrated (the probability that a report is security-sensitive) and
cut into bands on held-out projects (``train``):

- ``private`` from the score where reports were security reports at least
  ``AI_PIPELINE_TRIAGE_MIN_PRECISION_SECURITY`` (0.8) of the time, or on evidence whatever
  the score: a CVE id, an exploit or injection payload, a credential in the text;
- ``review`` (held for a maintainer) from the score that caught
  ``AI_PIPELINE_TRIAGE_SECURITY_REVIEW_RECALL`` of the security reports, or when the report
  names a vulnerability ("SQL injection", "XSS", "privilege escalation"…);
- ``public`` below.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from ai_pipeline.domain.models import SecurityBand
from ai_pipeline.domain.redaction import RULES as REDACTION_RULES
from ai_pipeline.text.patterns import linear
from ai_pipeline.triage.calibration import NEVER, FieldCalibration
from ai_pipeline.triage.embeddings import DIMENSIONS
from ai_pipeline.triage.rules import strong_security_terms, without_template_comments

FloatArray = npt.NDArray[np.float64]

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


def vocabulary_score(text: str) -> float:
    """Sum over word groups of log1p(hits): breadth of security vocabulary in ``text``."""
    lowered = text.lower()
    return float(sum(np.log1p(len(group.findall(lowered))) for group in _GROUPS))


def vocabulary_groups(text: str) -> list[str]:
    """The first word found of each group, for a reason a reader can check."""
    lowered = text.lower()
    found = (group.search(lowered) for group in _GROUPS)
    return [match.group(0) for match in found if match is not None]


@dataclass(frozen=True)
class SecurityScorer:
    direction: tuple[float, ...]  # mean of the prototype embeddings
    similarity_mean: float
    similarity_std: float
    vocabulary_mean: float
    vocabulary_std: float

    def score(self, embedding: npt.NDArray[np.float32], text: str) -> float:
        similarity = float(np.dot(np.asarray(self.direction, dtype=np.float32), embedding))
        return (similarity - self.similarity_mean) / self.similarity_std + (
            vocabulary_score(text) - self.vocabulary_mean
        ) / self.vocabulary_std

    def scores(self, embeddings: npt.NDArray[np.float32], texts: Sequence[str]) -> FloatArray:
        return np.array([self.score(e, t) for e, t in zip(embeddings, texts, strict=True)])


def fit_scorer(
    direction: npt.NDArray[np.float32],
    embeddings: npt.NDArray[np.float32],
    texts: Sequence[str],
) -> SecurityScorer:
    """Standardise both signals over ``texts`` (no labels: nothing here is learned from
    which reports were security reports)."""
    similarity = embeddings @ direction
    vocabulary = np.array([vocabulary_score(t) for t in texts])
    return SecurityScorer(
        direction=tuple(round(float(v), 7) for v in direction),
        similarity_mean=round(float(similarity.mean()), 7),
        similarity_std=round(float(similarity.std()), 7),
        vocabulary_mean=round(float(vocabulary.mean()), 7),
        vocabulary_std=round(float(vocabulary.std()), 7),
    )


def prototype_direction(prototype_embeddings: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
    return np.asarray(prototype_embeddings.mean(axis=0), dtype=np.float32)


# ------------------------------------------------------------------------------ evidence

# Evidence, not talk: what an attack or a leak leaves in a report. A report that only names
# a vulnerability class ("XSS", "SQL injection", rules.strong_security_terms) goes to review.
# Each pattern was checked against FARSEC and the NLBSE'24 GitHub issues: path fragments
# like "../../../" (build logs) and passwords in URLs (configuration examples) were not
# evidence there, so traversal needs its target file and URL passwords do not count.
# Each pattern comes with a substring it needs: the cheap test spares a long report most
# of the scans. RE2: report text, linear whatever it holds.
_PAYLOADS = tuple(
    (guard, linear(pattern))
    for guard, pattern in (
        ("cve-", r"\bcve-\d{4}-\d{4,}\b"),
        ("<script", r"<script[^>]*>[^<]{0,200}?\b(?:alert|prompt|confirm|eval)\s*\("),
        (
            "(",
            r"\bon(?:error|load|mouseover|focus|click)\s*=\s*['\"]?\s*"
            r"(?:alert|prompt|confirm|eval|fetch)\s*\(",
        ),
        ("javascript:", r"javascript:\s*(?:alert|prompt|confirm|eval)\s*\("),
        ("alert", r"\balert\s*\(\s*(?:1|document\.(?:cookie|domain)|['\"]xss['\"])\s*\)"),
        ("=", r"'\s*or\s*'?\d'?\s*=\s*'?\d"),
        ("select", r"\bunion\s+(?:all\s+)?select\b"),
        ("drop", r"'\s*;\s*drop\s+table\b"),
        ("etc/", r"(?:\.\./|%2e%2e%2f)+etc/(?:passwd|shadow)\b"),
        ("${jndi:", r"\$\{jndi:"),
        ("<!entity", r"<!entity\s+\S+\s+system\b"),
    )
)
# Token-shaped secrets only (the redaction rules' own shapes): a "password: …" line in a
# configuration example is not a leaked credential.
CREDENTIAL_KINDS = (
    "private_key",
    "github_token",
    "aws_access_key",
    "aws_secret_key",
    "slack_token",
    "stripe_key",
    "google_api_key",
    "openai_key",
    "jwt",
    "bearer_token",
)
_CREDENTIALS = tuple(rule for rule in REDACTION_RULES if rule.kind in CREDENTIAL_KINDS)


def security_evidence(text: str) -> list[str]:
    """What in ``text`` is evidence of a vulnerability: CVE ids and payloads as written,
    credentials by kind (never the secret itself)."""
    text = without_template_comments(text)
    lowered = text.lower()
    found = dict.fromkeys(
        match.group(0).strip()
        for guard, pattern in _PAYLOADS
        if guard in lowered
        for match in pattern.finditer(lowered)
    )
    for rule in _CREDENTIALS:
        if rule.pattern.search(text):
            found[f"a credential ({rule.kind.replace('_', ' ')})"] = None
    return list(found)


# ---------------------------------------------------------------------------- decision


@dataclass(frozen=True)
class SecurityBands:
    """Raw-score thresholds of the two upper bands (``NEVER``: the score alone never
    reaches the band)."""

    private: float = NEVER
    review: float = NEVER


@dataclass(frozen=True)
class SecurityDecision:
    band: SecurityBand
    probability: float  # calibrated, from the score: that the report is security-sensitive
    reason: str
    by_rule: bool = False  # decided by evidence or a named vulnerability, not the score
    evidence: tuple[str, ...] = ()

    @property
    def urgent(self) -> bool:
        """Private for more than a published CVE id (a payload, a credential, the score)."""
        published = bool(self.evidence) and all(e.startswith("cve-") for e in self.evidence)
        return self.band is SecurityBand.PRIVATE and not published

    @property
    def confidence(self) -> float | None:
        """How likely the band is right, where that was measured: the score's calibrated
        probability (of sensitive, or of not for ``public``); None for a rule's decision."""
        if self.by_rule:
            return None
        sensitive = self.band is not SecurityBand.PUBLIC
        return self.probability if sensitive else round(1.0 - self.probability, 4)


def decide_security(
    scorer: SecurityScorer,
    calibration: FieldCalibration,
    bands: SecurityBands,
    text: str,
    embedding: npt.NDArray[np.float32] | None,
) -> SecurityDecision:
    """The band of a report, its calibrated probability and the reason. Without an
    embedding (an engine built without an embedder) the semantic half reads a neutral,
    all-zero vector."""
    vector = embedding if embedding is not None else np.zeros(DIMENSIONS, np.float32)
    score = scorer.score(vector, text)
    probability = round(calibration.confidence(score), 4)
    evidence = security_evidence(text)
    if evidence:
        reason = _quote(evidence) + " → private"
        return SecurityDecision(
            SecurityBand.PRIVATE, probability, reason, by_rule=True, evidence=tuple(evidence)
        )
    if score >= bands.private:
        words = _quote(vocabulary_groups(text)) or "its wording"
        return SecurityDecision(
            SecurityBand.PRIVATE, probability, f"reads as a security report: {words} → private"
        )
    named = strong_security_terms(text)
    if named:
        reason = f"mentions {_quote(named)} → security review"
        return SecurityDecision(SecurityBand.REVIEW, probability, reason, by_rule=True)
    if score >= bands.review:
        words = _quote(vocabulary_groups(text)) or "its wording"
        return SecurityDecision(
            SecurityBand.REVIEW, probability, f"security wording: {words} → security review"
        )
    return SecurityDecision(SecurityBand.PUBLIC, probability, "no security evidence or wording")


def _quote(items: Sequence[str], most: int = 3) -> str:
    quoted = [item if item.startswith("a credential") else f"'{item[:40]}'" for item in items]
    return ", ".join(quoted[:most])


def band_thresholds(
    calibration: FieldCalibration, min_precision: float, review_recall: float
) -> SecurityBands:
    """Score thresholds of the bands for the operator's targets; the review band starts no
    higher than the private one."""
    private = calibration.threshold(min_precision)
    return SecurityBands(
        private, min(calibration.curve.threshold_for_recall(review_recall), private)
    )
