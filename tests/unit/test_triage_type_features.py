"""Template cues of the issue-type model: golden cases. Training and inference share
``cue_vector``, so a change here changes the model (bump CUES_VERSION and retrain)."""

from __future__ import annotations

import re

import numpy as np
import pytest

from ai_pipeline.triage.features import join_fields
from ai_pipeline.triage.type_features import (
    CUE_NAMES,
    CUE_SCALE,
    N_CUES,
    cue_matrix,
    cue_vector,
    dense_matrix,
    dense_row,
    split_title,
)


def cues(title: str, body: str) -> dict[str, float]:
    values = cue_vector(join_fields([title, body])) / CUE_SCALE
    return dict(zip(CUE_NAMES, values, strict=True))


def test_names_and_vector_agree() -> None:
    assert len(CUE_NAMES) == N_CUES == len(set(CUE_NAMES))
    assert cue_vector("title").shape == (N_CUES,)


def test_split_title_takes_the_first_line() -> None:
    assert split_title("Title here\nbody line 1\nline 2") == ("Title here", "body line 1\nline 2")
    assert split_title("only a title") == ("only a title", "")


@pytest.mark.parametrize(
    ("title", "body", "on", "off"),
    [
        ("How do I set the proxy?", "", ["title_question_mark", "title_question_word"], []),
        ("[Feature] dark mode", "", ["title_feature_tag", "title_feature_word"], ["title_q"]),
        (
            "Crash on save",
            "### Describe the bug\nSteps to reproduce\nTraceback (most recent call last):",
            ["title_bug_word", "body_describe_bug", "body_steps_to_reproduce"],
            ["body_feature_template"],
        ),
        (
            "Support X",
            "**Is your feature request related to a problem? Please describe.**",
            ["body_feature_template"],
            ["body_describe_bug"],
        ),
        ("x", "### Issue Type\n\nBug\n\n### Source", ["body_type_bug"], ["body_type_feature"]),
        ("x", "### Issue Type\n\nFeature Request", ["body_type_feature"], ["body_type_bug"]),
        ("x", "### Issue Type\n\nSupport", ["body_type_support"], ["body_type_bug"]),
        ("x", "Issue Type: <b>Bug</b>", ["body_type_bug"], []),
        ("x", "### Pull Request Readiness Checklist", ["body_pull_request"], []),
    ],
)
def test_golden_cues(title: str, body: str, on: list[str], off: list[str]) -> None:
    values = cues(title, body)
    for name in on:
        assert values[name] > 0, name
    for name in off:
        assert all(v == 0 for k, v in values.items() if k.startswith(name)), name


def test_body_cues_count_on_a_log_scale() -> None:
    once, thrice = cues("t", "error"), cues("t", "error error error")
    assert once["body_error_trace"] == pytest.approx(np.log(2))
    assert thrice["body_error_trace"] == pytest.approx(np.log(4))


def test_empty_body_and_length() -> None:
    assert cues("only a title", "")["body_empty"] == 1.0
    assert cues("t", "some body")["body_empty"] == 0.0
    assert cues("t", "x" * 100)["body_length"] == pytest.approx(np.log1p(100) / 10)


def test_dense_rows_put_the_embedding_first() -> None:
    embedding = np.arange(4, dtype=np.float32)
    row = dense_row(embedding, "How?\nbody")
    np.testing.assert_array_equal(row[:4], embedding)
    np.testing.assert_array_equal(row[4:], cue_vector("How?\nbody"))
    matrix = dense_matrix(np.stack([embedding, embedding]), ["How?\nbody", "b"])
    np.testing.assert_array_equal(matrix[0], row)
    np.testing.assert_array_equal(matrix[:, 4:], cue_matrix(["How?\nbody", "b"]))
    with pytest.raises(ValueError):
        dense_matrix(np.stack([embedding]), ["a", "b"])


@pytest.mark.parametrize(
    "title",
    ["How do I", "  why not", "\tCan I", "\u3000what", "x how", "How", "Does it", "\r\nhow"],
)
def test_the_question_word_cue_reads_a_title_as_the_old_pattern_did(title: str) -> None:
    """The old "^\\s*(how|…)" (quadratic over blank lines; a title has none)."""
    old = re.compile(
        r"^\s*(how|why|what|where|when|which|is there|is it|can i|can we|can you|does|do i"
        r"|should)\b",
        re.I | re.M,
    )
    index = CUE_NAMES.index("title_question_word")
    assert (cue_vector(title + "\nbody")[index] > 0) == bool(old.search(split_title(title)[0]))
