"""Dense per-report features of the issue-type classifier: template cues and the embedding.

The issue-type model averages two linear models: one over word tf-idf (``linear.py``) and
one over this module's dense block, ``[sentence embedding | template cues]``. The cues are
small handcrafted signals that issue templates and phrasing give away ("### Describe the
bug", "Is your feature request related to a problem", a question mark in the title, a stack
trace). The tf-idf model sees most of those words already; the embedding model does not,
and gains about four macro-F1 points from them in cross-validation.

Training and inference both call :func:`cue_vector` on the same text (title first, as
``join_fields`` builds it), so they cannot disagree. Changing a cue changes the features:
bump ``CUES_VERSION`` and retrain.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from typing import Literal

import numpy as np
import numpy.typing as npt

from ai_pipeline.triage.features import MAX_CHARS

CUES_VERSION = 1
# The cues enter one logistic regression together with the 384 embedding dimensions (unit
# norm); this scale keeps their regularisation comparable (cross-validated: 0.5 ≈ 1.0 > 0.3).
CUE_SCALE = 0.5

Field = Literal["title", "body"]
FloatVector = npt.NDArray[np.float64]
FloatMatrix = npt.NDArray[np.float64]

# (name, field, pattern). Title cues are 0/1; body cues are log(1 + number of matches).
_CUES: tuple[tuple[str, Field, str], ...] = (
    ("title_question_mark", "title", r"\?"),
    (
        "title_question_word",
        "title",
        # [^\S\n], not \s: a line start followed by \s, which spans newlines, is quadratic
        # over blank lines (a title has none, so the cue is unchanged).
        r"^[^\S\n]*(how|why|what|where|when|which|is there|is it|can i|can we|can you|does|do i"
        r"|should)\b",
    ),
    (
        "title_bug_word",
        "title",
        r"\b(bug|crash|crashes|error|fail|fails|failed|broken|exception|not working"
        r"|doesn't work|does not work|segfault|wrong|incorrect|issue)\b",
    ),
    (
        "title_feature_word",
        "title",
        r"\b(feature|request|add|support|allow|option|enable|proposal|implement|suggestion"
        r"|improve|should)\b",
    ),
    (
        "title_feature_tag",
        "title",
        r"\[(feature|feature request|enhancement|proposal|rfc)\]|^feature( request)?\s*:",
    ),
    ("title_bug_tag", "title", r"\[bug\]|^bug\s*:"),
    ("title_question_tag", "title", r"\[(question|help|support)\]|^question\s*:"),
    ("body_describe_bug", "body", r"describe the (bug|problem|current behavio)"),
    (
        "body_steps_to_reproduce",
        "body",
        r"steps to reproduce|to reproduce|reproduction steps|repro steps|minimal reproduc",
    ),
    ("body_expected_actual", "body", r"expected (behavio|result)|actual (behavio|result)"),
    (
        "body_feature_template",
        "body",
        r"feature request|is your feature request related|describe the solution you'?d like"
        r"|describe alternatives|will this change the current api|who will benefit"
        r"|describe the feature",
    ),
    (
        "body_system_information",
        "body",
        r"system information|os platform|tensorflow version|python version|vs ?code version"
        r"|os version|react version|opencv version|bitcoin core version",
    ),
    (
        "body_type_bug",
        "body",
        r"issue type: ?(<b>)?bug|report a \*?bug|type: bug|bug report|bug_report_template"
        r"|### issue type\s+bug",
    ),
    (
        "body_type_feature",
        "body",
        r"issue type: ?(<b>)?feature|request a \*?feature|type: feature|feature/enhancement"
        r"|feature_request_template|### issue type\s+(documentation )?feature",
    ),
    ("body_type_support", "body", r"### issue type\s+(support|others)|it's not a question"),
    ("body_pull_request", "body", r"pull request readiness checklist|opencv_extra"),
    (
        "body_question",
        "body",
        r"\b(how (do|can|to|should) (i|we|you)|is (it|there) (a )?(way|possible)"
        r"|any (idea|suggestion|help)|i (want|would like) to know|question|documentation"
        r"|stack ?overflow|help me)\b",
    ),
    (
        "body_wish",
        "body",
        r"\b(would be (nice|great|useful|good|helpful)|it would be|please add|add support"
        r"|feature|proposal|suggest)\b",
    ),
    ("body_code_fence", "body", r"```"),
    (
        "body_error_trace",
        "body",
        r"traceback|stack ?trace|exception|error:|\bat [\w.$]+\(|segmentation fault"
        r"|core dumped|assertion failed|\berror\b",
    ),
    ("body_question_mark", "body", r"\?"),
)
_COMPILED = tuple((field, re.compile(pattern, re.I | re.M)) for _, field, pattern in _CUES)
CUE_NAMES: tuple[str, ...] = (*(name for name, _, _ in _CUES), "body_length", "body_empty")
N_CUES = len(CUE_NAMES)


# Cues a reader recognises, by the label they point to, for the reason shown with a type.
# (phrase, or None to quote the words matched).
_EVIDENCE: dict[str, tuple[str, str | None]] = {
    "title_bug_word": ("bug", None),
    "title_bug_tag": ("bug", None),
    "body_type_bug": ("bug", "a bug template"),
    "body_describe_bug": ("bug", "a bug template"),
    "body_error_trace": ("bug", "a stack trace or error"),
    "body_steps_to_reproduce": ("bug", "steps to reproduce"),
    "body_expected_actual": ("bug", "expected and actual behaviour"),
    "title_feature_tag": ("feature", None),
    "title_feature_word": ("feature", None),
    "body_feature_template": ("feature", "a feature-request template"),
    "body_type_feature": ("feature", "a feature-request template"),
    "body_wish": ("feature", None),
    "title_question_mark": ("question", "a question in the title"),
    "title_question_word": ("question", None),
    "title_question_tag": ("question", None),
    "body_type_support": ("question", "a support template"),
    "body_question": ("question", None),
}
_CUE_PATTERNS = dict(zip((name for name, _, _ in _CUES), _COMPILED, strict=True))
EVIDENCE_CHARS = 4_000  # a reason names what is near the top; the model reads it all


def type_evidence(text: str, label: str, most: int = 3) -> list[str]:
    """What in the report points to ``label`` (title first), as short phrases: the words
    matched, or what the cue stands for ("a stack trace or error")."""
    title, body = split_title(text[:EVIDENCE_CHARS])
    found: dict[str, None] = {}
    for name, (points_to, phrase) in _EVIDENCE.items():
        if points_to != label:
            continue
        field, pattern = _CUE_PATTERNS[name]
        match = pattern.search(title if field == "title" else body)
        if match is not None:
            found[phrase or f"'{match.group(0).strip().lower()}'"] = None
        if len(found) == most:
            break
    return list(found)


def split_title(text: str) -> tuple[str, str]:
    """(title, body) of a ``join_fields`` text: the title is its first line."""
    title, _, body = text.partition("\n")
    return title, body


def cue_vector(text: str) -> FloatVector:
    """The scaled template cues of one report text (title first, as ``join_fields`` joins)."""
    title, body = split_title(text[:MAX_CHARS])
    values = np.zeros(N_CUES, dtype=np.float64)
    for j, (field, pattern) in enumerate(_COMPILED):
        if field == "title":
            values[j] = 1.0 if pattern.search(title) else 0.0
        else:
            values[j] = math.log1p(len(pattern.findall(body)))
    values[-2] = math.log1p(len(body)) / 10.0
    values[-1] = 0.0 if body.strip() else 1.0
    return values * CUE_SCALE


def cue_matrix(texts: Sequence[str]) -> FloatMatrix:
    if not texts:
        return np.zeros((0, N_CUES), dtype=np.float64)
    return np.stack([cue_vector(text) for text in texts])


def dense_row(embedding: npt.NDArray[np.floating], text: str) -> FloatVector:
    """The dense block of one report: its embedding, then its cues."""
    return np.concatenate([np.asarray(embedding, dtype=np.float64), cue_vector(text)])


def dense_matrix(embeddings: npt.NDArray[np.floating], texts: Sequence[str]) -> FloatMatrix:
    """Rows of :func:`dense_row` for many reports (``embeddings`` row-aligned with ``texts``)."""
    if len(texts) != embeddings.shape[0]:
        raise ValueError("one embedding per text is needed")
    return np.hstack([np.asarray(embeddings, dtype=np.float64), cue_matrix(texts)])
