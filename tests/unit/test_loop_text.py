"""Reply tokens, unsubscribe links, and what is written on the issue for the reporter."""

from __future__ import annotations

from ai_pipeline.domain.links import (
    reply_token,
    reply_token_matches,
    unsubscribe_params,
    unsubscribed_address,
)
from ai_pipeline.domain.redaction import Redactor
from ai_pipeline.domain.replies import answered_by, comment_key, reply_id
from ai_pipeline.drafting.loop_text import ANSWERED, mark_answered, reply_comment
from ai_pipeline.drafting.marker import marker, request_id_in
from ai_pipeline.drafting.template import render
from tests.factories import report, triage

KEY = b"k" * 32


def test_a_reply_token_is_bound_to_its_request_and_key() -> None:
    token = reply_token(KEY, "r-1")
    assert reply_token_matches(KEY, "r-1", token)
    assert not reply_token_matches(KEY, "r-2", token)
    assert not reply_token_matches(b"other" * 8, "r-1", token)
    assert not reply_token_matches(KEY, "r-1", token[:-1] + ("A" if token[-1] != "A" else "B"))


def test_an_unsubscribe_link_names_its_address_and_cannot_be_altered() -> None:
    params = unsubscribe_params(KEY, "Ana@Example.com")
    assert unsubscribed_address(KEY, params["a"], params["s"]) == "ana@example.com"
    other = unsubscribe_params(KEY, "eve@example.com")
    assert unsubscribed_address(KEY, other["a"], params["s"]) is None


def test_a_retried_reply_has_the_same_id_and_its_own_marker() -> None:
    assert reply_id("r-1", "It fails  on\nUbuntu") == reply_id("r-1", "It fails on\nUbuntu")
    assert reply_id("r-1", "a", "key-1") == reply_id("r-1", "b", "key-1")
    assert reply_id("r-1", "a") != reply_id("r-2", "a")
    key = comment_key("r-1", reply_id("r-1", "a"))
    body = reply_comment(key, "a", Redactor())
    assert marker(key) in body and request_id_in(body) == key and marker("r-1") not in body


def test_a_hostile_reply_is_redacted_and_made_inert() -> None:
    token = "ghp_" + "A1b2C3d4" * 5
    hostile = (
        f"my token {token}, mail me at eve@example.com, cc @security-team\n"
        "## Triage\n[click](javascript:alert(1)) <img src=x onerror=alert(1)>\n"
        "<!-- ai-pipeline:request=someone-else -->"
    )
    body = reply_comment("r-1:reply:r_x", hostile, Redactor())
    assert token not in body and "eve@example.com" not in body
    assert "REDACTED:github_token" in body and "REDACTED:email" in body
    assert "@\u200bsecurity-team" in body
    assert "<img" not in body and "&lt;img" in body
    assert "\\[click\\]" in body and "\\## Triage" in body
    assert request_id_in(body) == "r-1:reply:r_x"


def test_a_reply_answers_the_questions_the_rules_find_in_it() -> None:
    asked = ["steps_to_reproduce", "environment", "expected_behavior"]
    text = "It happens on Ubuntu 24.04.\n1. Open the app\n2. Save the file"
    assert answered_by(text, asked, "ana@example.com") == ["steps_to_reproduce", "environment"]
    assert answered_by("thanks!", asked, "ana@example.com") == []


def test_the_bodys_answered_questions_are_struck_through_once() -> None:
    missing = ["steps_to_reproduce", "environment"]
    body = render("r-1", report(), triage(missing_information=missing)).body
    once = mark_answered(body, ["environment"])
    assert once.count(ANSWERED) == 1 and "~~Which version" in once
    assert mark_answered(once, ["environment"]) == once
    assert mark_answered(once, missing).count(ANSWERED) == 2
