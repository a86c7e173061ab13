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

# The domain half of an e-mail address. The whole address used to be one pattern,
# "\b[\w.+-]+@[\w-]+(?:\.[\w-]+)+\b", which backtracks quadratically over a long run of
# word characters and dots; _replace_emails replaces exactly what it matched, reading the
# local part backwards from each "@".
_EMAIL_DOMAIN = re.compile(r"@[\w-]+(?:\.[\w-]+)+\b")
_LOCAL_PUNCTUATION = frozenset(".+-")
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
    text = _replace_emails(text, " xemail ")
    return _HEX.sub(" xhex ", text)


def _replace_emails(text: str, replacement: str) -> str:
    """``text`` with each e-mail address replaced, in one pass. An address's local part
    starts at the first word boundary of the run of address characters before its "@" (not
    before the end of the previous address), as the single pattern's leftmost match did."""
    parts: list[str] = []
    done = 0
    for domain in _EMAIL_DOMAIN.finditer(text):
        at = domain.start()
        start = at
        while start > done and (_is_word(text[start - 1]) or text[start - 1] in _LOCAL_PUNCTUATION):
            start -= 1
        local = next((i for i in range(start, at) if _boundary(text, i)), None)
        if local is None:
            continue
        parts += [text[done:local], replacement]
        done = domain.end()
    parts.append(text[done:])
    return "".join(parts)


def _is_word(character: str) -> bool:
    return character.isalnum() or character == "_"


def _boundary(text: str, i: int) -> bool:
    return (i > 0 and _is_word(text[i - 1])) != _is_word(text[i])


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
