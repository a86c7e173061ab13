"""No regular expression of the package can be made to backtrack super-linearly.

Every compiled pattern the package holds (tests/regex_audit.py walks every module) is
either RE2 (``ai_pipeline.text.patterns``: linear by construction) or a Python ``re``
pattern that recheck, a ReDoS checker, finds safe. Patterns are compiled where the walk
sees them: no ``re`` call compiles one on the fly.
"""

from __future__ import annotations

import ast
import json
import re
import subprocess

import pytest

from tests.conftest import REPO, require_tool
from tests.regex_audit import (
    RECHECK,
    Found,
    alphabet_of,
    check,
    compiled_patterns,
    is_re2,
    to_ecmascript,
)

SRC = REPO / "src" / "ai_pipeline"

# Read text from outside and backtracked super-linearly on Python's re: now RE2.
MUST_BE_RE2 = {
    "ai_pipeline.drafting.template._URL",
    "ai_pipeline.triage.rules._HEADING",
    "ai_pipeline.triage.rules._NUMBERED_STEP",
    "ai_pipeline.triage.rules._SECOND_STEP",
    "ai_pipeline.triage.rules._HTML_COMMENT",
    "ai_pipeline.adapters.trackers.github._REPOSITORY",
}
# Redaction rules on re: those whose lookaround tells an address from a version number,
# proven linear by the checker. Every other rule is RE2.
REDACTION_ON_RE = {"ipv6", "ipv4", "phone"}


@pytest.fixture(scope="module")
def patterns() -> list[Found]:
    return compiled_patterns()


@pytest.fixture(scope="module")
def node() -> str:
    node = require_tool("node")
    require_tool("recheck", RECHECK)
    return node


def test_the_walk_finds_patterns_in_globals_rules_and_tuples(patterns: list[Found]) -> None:
    where = {found.where for found in patterns}
    assert "ai_pipeline.triage.features._TOKEN" in where
    assert any(w.startswith("ai_pipeline.domain.redaction.RULES[") for w in where)
    assert any(w.startswith("ai_pipeline.triage.type_features._COMPILED[") for w in where)
    assert len(patterns) > 60


def test_patterns_that_backtracked_on_re_are_really_re2(patterns: list[Found]) -> None:
    from ai_pipeline.domain.redaction import RULES
    from ai_pipeline.text.patterns import linear

    by_name = {found.where: found.pattern for found in patterns}
    assert {name for name in MUST_BE_RE2 if not is_re2(by_name[name])} == set()
    assert {rule.kind for rule in RULES if not is_re2(rule.pattern)} == REDACTION_ON_RE
    assert is_re2(linear("a+"))


@pytest.mark.timeout(1800)  # a first run checks every pattern: minutes; later ones use the cache
def test_every_python_re_pattern_passes_the_redos_checker(patterns: list[Found], node: str) -> None:
    python = [found for found in patterns if not is_re2(found.pattern)]
    verdicts = check([found.pattern for found in python], node)
    unsafe = [
        f"{found.where} {found.pattern.pattern!r}: {v.status} {v.complexity} {v.attack[:80]}"
        f" {v.error}"
        for found, v in zip(python, verdicts, strict=True)
        if v.status != "safe"
    ]
    assert not unsafe, "\n".join(unsafe)


@pytest.mark.parametrize(
    ("pattern", "complexity"),
    [
        # triage/rules.py's _EMPTY_ANSWER before it was rewritten: minutes on 64 KiB.
        (
            re.compile(
                r"^\W*(?:_?no response_?|n/?a|none|tbd|todo|-+|\.+)?\W*$",
                re.IGNORECASE | re.DOTALL,
            ),
            "3rd degree polynomial",
        ),
        # The e-mail rule redaction had: quadratic in a long run of word characters.
        (re.compile(r"\b[A-Za-z0-9._%+\-]+@[A-Za-z0-9.\-]+\.[A-Za-z]{2,}\b"), "2nd degree"),
        # A line start in MULTILINE mode followed by \s*, which spans the newlines.
        (re.compile(r"^\s*(?:1[.)]|step 1\b)", re.IGNORECASE | re.MULTILINE), "2nd degree"),
    ],
    ids=["empty-answer", "email", "multiline-space"],
)
def test_the_checker_catches_the_patterns_that_were_super_linear(
    node: str, pattern: re.Pattern[str], complexity: str
) -> None:
    (verdict,) = check([pattern], node)
    assert verdict.status == "vulnerable", verdict
    assert verdict.complexity.startswith(complexity), verdict


@pytest.mark.parametrize(
    ("pattern", "texts"),
    [
        (r"(?i)\bcafé\b", ["CAFÉ!", "xcafé", "café_", "Café au"]),
        (r"(?m)^\s*(?:1[.)]|step 1\b)", ["a\n  1. x", "\r1)", "step 1x", "\n\nSTEP 1 go"]),
        (r"[^\W_]+(?:'[^\W_]+)*|\?", ["don't_stop ٣٤ 日本?"]),
        (r"(?<![\w.])(?:\d{1,3}\.){3}\d{1,3}(?![\w.])", ["a 10.0.0.1 b", "x1.2.3.4", "1.2.3.4."]),
        (r"(?s)<!--.*?(?:-->|$)", ["a <!-- b --> c <!-- d"]),
    ],
)
def test_the_translation_matches_what_python_matches(
    node: str, pattern: str, texts: list[str]
) -> None:
    """The ECMAScript pattern, over representatives, finds the same spans as Python's
    pattern over the real text (each character mapped to its block's representative)."""
    compiled = re.compile(pattern)
    source, flags = to_ecmascript(compiled)
    script = (
        "const [source, flags, texts] = JSON.parse(require('fs').readFileSync(0, 'utf8'));"
        "const re = new RegExp(source, flags + 'g');"
        "console.log(JSON.stringify(texts.map(t => [...t.matchAll(re)].map(m =>"
        " [m.index, m.index + m[0].length]))));"
    )
    mapped = [_as_representatives(compiled, text) for text in texts]
    found = subprocess.run(
        [node, "-e", script],
        input=json.dumps([source, flags, mapped]),
        capture_output=True,
        text=True,
        check=True,
    )
    expected = [[list(m.span()) for m in compiled.finditer(text)] for text in texts]
    assert json.loads(found.stdout) == expected


def _as_representatives(compiled: re.Pattern[str], text: str) -> str:
    """``text`` with each character replaced by the character that stands for its block in
    the translation of ``compiled`` (all characters here are BMP: one UTF-16 unit each)."""
    return "".join(chr(alphabet_of(compiled).stand_in(ord(c))) for c in text)


def test_no_re_call_compiles_a_pattern_out_of_sight() -> None:
    """``re.compile`` at module level only (where the walk finds it), ``re.escape`` and the
    flags; no ``re.search(pattern, …)``, ``re.sub(…)`` or compile inside a function."""
    offences = []
    for path in sorted(SRC.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        module_level = {id(node) for node in _module_level_calls(tree)}
        for node in ast.walk(tree):
            if not (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and isinstance(node.func.value, ast.Name)
                and node.func.value.id == "re"
            ):
                continue
            name = node.func.attr
            if name == "escape" or (name == "compile" and id(node) in module_level):
                continue
            offences.append(f"{path.relative_to(REPO)}:{node.lineno} re.{name}")
    assert not offences, offences


def _module_level_calls(tree: ast.Module) -> list[ast.Call]:
    calls: list[ast.Call] = []
    for statement in tree.body:
        if isinstance(statement, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            continue
        calls += [n for n in ast.walk(statement) if isinstance(n, ast.Call)]
    return calls
