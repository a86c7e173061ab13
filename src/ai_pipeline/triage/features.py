"""Text normalisation and tokenisation shared by training and inference.

Training hands :func:`analyze` to scikit-learn's ``TfidfVectorizer`` as its analyzer, and
inference (``linear.py``, ``duplicates.py``) calls the very same function, so the two can
never disagree about what a term is. Changing anything here changes the features: retrain.
"""

from __future__ import annotations

import itertools
import re
import unicodedata
from collections.abc import Iterable

# Bump when the token stream changes; the artifact records it and the loader refuses a mismatch.
TOKENIZER_VERSION = 1

# Long bodies are mostly logs and stack traces; their tail adds little and costs latency.
MAX_CHARS = 20_000

_EMAIL = re.compile(r"\b[\w.+-]+@[\w-]+(?:\.[\w-]+)+\b")
# Hex literals and hash-like ids (commit shas, addresses): at least 8 chars mixing digits/letters.
_HEX = re.compile(r"\b(?:0x[0-9a-f]+|(?=[0-9a-f]*\d)(?=[0-9a-f]*[a-f])[0-9a-f]{8,})\b")
# Words (letters/digits, inner apostrophes kept: "doesn't"), plus "?" which marks questions.
_TOKEN = re.compile(r"[^\W_]+(?:'[^\W_]+)*|\?")
_LONG_NUMBER_DIGITS = 5


def normalize(text: str) -> str:
    """Fold case and width, and replace volatile spans (emails, hex ids) by placeholders.

    URLs are deliberately kept: their host and path words are what tells two otherwise
    templated reports ("www.example.com - page is blank") apart.
    """
    text = unicodedata.normalize("NFKC", text[:MAX_CHARS]).casefold()
    text = _EMAIL.sub(" xemail ", text)
    return _HEX.sub(" xhex ", text)


def tokenize(text: str) -> list[str]:
    """Unigrams of the normalised text; long numbers (ids, timestamps) collapse to ``xnum``."""
    return [_fold_number(token) for token in _TOKEN.findall(normalize(text))]


def _fold_number(token: str) -> str:
    if token.isdigit() and len(token) >= _LONG_NUMBER_DIGITS:
        return "xnum"
    return token


def with_bigrams(tokens: list[str]) -> list[str]:
    """Unigrams followed by adjacent-pair bigrams joined by a space (scikit-learn's convention)."""
    return tokens + [f"{a} {b}" for a, b in itertools.pairwise(tokens)]


def analyze(text: str) -> list[str]:
    """The classifier analyzer: unigrams and bigrams."""
    return with_bigrams(tokenize(text))


def analyze_unigrams(text: str) -> list[str]:
    """The duplicate-search analyzer: unigrams only."""
    return tokenize(text)


def join_fields(parts: Iterable[str | None]) -> str:
    """Join non-empty text fields with newlines, title first, as ``BugReport.full_text`` does."""
    return "\n".join(p for p in parts if p)
