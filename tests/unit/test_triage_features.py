"""Tokenisation golden cases: training and inference share these functions, so any change
here changes the model's features (bump TOKENIZER_VERSION and retrain)."""

from __future__ import annotations

import pytest

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
