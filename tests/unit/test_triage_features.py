"""Tokenisation golden cases: training and inference share these functions, so any change
here changes the model's features (bump TOKENIZER_VERSION and retrain)."""

from __future__ import annotations

import re
import unicodedata

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ai_pipeline.triage.features import (
    MAX_CHARS,
    analyze,
    analyze_unigrams,
    join_fields,
    normalize,
    tokenize,
    with_bigrams,
)


@pytest.mark.parametrize(
    ("text", "tokens"),
    [
        ("App CRASHES on start", ["app", "crashes", "on", "start"]),
        ("How do I configure X?", ["how", "do", "i", "configure", "x", "?"]),
        ("doesn't work", ["doesn't", "work"]),
        ("snake_case and kebab-case", ["snake", "case", "and", "kebab", "case"]),
        (
            "NullPointerException at Foo.java:42",
            ["nullpointerexception", "at", "foo", "java", "42"],
        ),
        ("see https://github.com/a/b", ["see", "https", "github", "com", "a", "b"]),
        ("mail me@example.com now", ["mail", "xemail", "now"]),
        ("addr 0x7ffe3b2c sha 9fceb02d0ae5", ["addr", "xhex", "sha", "xhex"]),
        ("3d 2fa deadbeef", ["3d", "2fa", "deadbeef"]),  # short or digit-free: kept
        ("issue 12345 in v1.2", ["issue", "xnum", "in", "v1", "2"]),
        ("ＡＢＣ　２０２４", ["abc", "2024"]),  # full-width folded by NFKC
        ("Straße", ["strasse"]),  # casefold, not lower
        ("", []),
    ],
)
def test_tokenize_golden(text: str, tokens: list[str]) -> None:
    assert tokenize(text) == tokens


def test_bigrams_follow_unigrams_like_sklearn() -> None:
    assert with_bigrams(["a", "b", "c"]) == ["a", "b", "c", "a b", "b c"]
    assert analyze("Add support") == ["add", "support", "add support"]
    assert analyze_unigrams("Add support") == ["add", "support"]
    assert with_bigrams(["solo"]) == ["solo"]


def test_long_text_is_truncated() -> None:
    assert len(normalize("a" * (MAX_CHARS + 10))) == MAX_CHARS


def test_join_fields_skips_empty_parts() -> None:
    assert join_fields(["Title", "", None, "body"]) == "Title\nbody"


# normalize() as it was, with the e-mail pattern that was quadratic on a long run of word
# characters: the rewrite must normalise every text exactly as it did, or the shipped
# model's features would move.
_OLD_EMAIL = re.compile(r"\b[\w.+-]+@[\w-]+(?:\.[\w-]+)+\b")
_OLD_HEX = re.compile(r"\b(?:0x[0-9a-f]+|(?=[0-9a-f]*\d)(?=[0-9a-f]*[a-f])[0-9a-f]{8,})\b")


def _old_normalize(text: str) -> str:
    text = unicodedata.normalize("NFKC", text[:MAX_CHARS]).casefold()
    return _OLD_HEX.sub(" xhex ", _OLD_EMAIL.sub(" xemail ", text))


_EMAIL_PIECES = st.sampled_from(
    ["a", "Z", "9", "_", ".", "+", "-", "@", " ", "é", "日", "٣", "x.org", "@b.c", "..", "\n"]
)


@settings(max_examples=600, deadline=None)
@given(st.lists(_EMAIL_PIECES, max_size=16).map("".join))
def test_normalize_replaces_emails_exactly_as_the_old_pattern_did(text: str) -> None:
    assert normalize(text) == _old_normalize(text)
