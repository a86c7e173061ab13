"""Routing rules: CODEOWNERS semantics (last match wins), stack-trace paths, clear errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from ai_pipeline.domain.models import TriageResult
from ai_pipeline.triage.routing import Router, RoutingError, paths_in_text
from tests.factories import report, triage

RULES = """
# general first, specific later: the last matching rule wins
category:*          @acme/triage
category:ui         @acme/frontend
type:feature        @acme/product
label:security      @acme/security
path:src/net/**     @alice @acme/networking
path:*.sql          @acme/data
"""


def result(**overrides: object) -> TriageResult:
    return triage(**{"category": "backend", "labels": ["bug"], **overrides})


ROUTER = Router.parse(RULES, source="ROUTING")


def test_general_rule_applies_when_nothing_more_specific_matches() -> None:
    suggestion = ROUTER.route(report(), result())
    assert suggestion is not None
    assert (suggestion.team, suggestion.assignee) == ("acme/triage", None)
    assert suggestion.reason == "category backend matches category:* (ROUTING, line 3)"


def test_the_last_matching_rule_wins() -> None:
    ui_security = result(category="ui", labels=["bug", "security"])
    suggestion = ROUTER.route(report(), ui_security)
    assert suggestion is not None and suggestion.team == "acme/security"
    assert ROUTER.route(report(), result(category="ui")).team == "acme/frontend"  # type: ignore[union-attr]


def test_a_path_in_a_stack_trace_routes_to_its_owners() -> None:
    trace = (
        "Traceback (most recent call last):\n"
        '  File "/home/ci/app/src/net/http.py", line 88, in send\n'
        "ConnectionResetError"
    )
    suggestion = ROUTER.route(report(actual_behavior=trace), result(category="ui"))
    assert suggestion is not None
    assert (suggestion.assignee, suggestion.team) == ("alice", "acme/networking")
    # The part of the path the rule names, not where the reporter's machine keeps it.
    assert "path src/net/http.py matches path:src/net/**" in suggestion.reason
    assert "/home/ci" not in suggestion.reason


@pytest.mark.parametrize(
    ("rule", "trace", "shown"),
    [
        ("path:**/*.py @a", 'File "/home/ana/proj/src/x.py", line 1', "x.py"),
        ("path:src/** @a", 'File "C:\\Users\\ana\\proj\\src\\ui\\w.py", line 3', "src/ui/w.py"),
        ("path:*.sql @a", "/srv/ana/db/0042_add.sql:3: syntax error", "0042_add.sql"),
        ("path:/app/ @a", "/var/lib/ana/app/main.go:12: panic", "app/main.go"),
    ],
)
def test_a_routing_reason_names_no_local_directory(rule: str, trace: str, shown: str) -> None:
    suggestion = Router.parse(rule).route(report(actual_behavior=trace), result())
    assert suggestion is not None
    assert suggestion.reason.startswith(f"path {shown} matches ")
    assert "ana" not in suggestion.reason


def test_a_file_name_pattern_matches_anywhere() -> None:
    text = "migration failed: db/migrations/0042_add_index.sql:3: syntax error"
    suggestion = ROUTER.route(report(actual_behavior=text), result())
    assert suggestion is not None and suggestion.team == "acme/data"


def test_only_decided_values_route_and_the_reason_is_kept() -> None:
    feature = result(type="feature")
    assert ROUTER.route(report(), feature).team == "acme/product"  # type: ignore[union-attr]
    unsure = result(type="feature", suggested=["type", "category"])
    assert ROUTER.route(report(), unsure) is None  # a suggestion never picks an owner
    routed = ROUTER.apply(report(), feature)
    assert routed.reasons["assignee"] == routed.assignee_suggestion.reason  # type: ignore[union-attr]


def test_no_rule_no_suggestion_and_apply_keeps_the_result() -> None:
    router = Router.parse("category:ui @acme/frontend")
    original = result()
    assert router.route(report(), original) is None
    assert router.apply(report(), original) is original


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('File "src/app/models.py", line 12, in save', ["src/app/models.py"]),
        ("at com.acme.net.Client.send(Client.java:42)", ["com/acme/net/Client.java"]),
        ("at render (src/ui/Button.tsx:10:5)", ["src/ui/Button.tsx"]),
        ("src/net/http.c:88: error: expected ';'", ["src/net/http.c"]),
        ("version 1.2.3 and ratio 3:4 are not paths", []),
    ],
)
def test_paths_in_text(text: str, expected: list[str]) -> None:
    assert paths_in_text(text) == expected


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("owner:x @a", "is not a selector"),
        ("category:ui", "names no owner"),
        ("category:ui acme", "is not @user or @org/team"),
    ],
)
def test_bad_lines_name_their_line_number(line: str, message: str) -> None:
    with pytest.raises(RoutingError, match=rf"ROUTING, line 2: .*{message}"):
        Router.parse(f"# header\n{line}\n", source="ROUTING")


def test_load_reads_a_file(tmp_path: Path) -> None:
    path = tmp_path / "ROUTING"
    path.write_text(RULES, encoding="utf-8")
    assert len(Router.load(path).rules) == 6
