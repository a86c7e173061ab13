"""Every regular expression the package compiles, and a real ReDoS checker's verdict on each.

``compiled_patterns()`` imports every module of ``ai_pipeline`` and collects the compiled
patterns it holds: module globals, tuples, lists and dicts of them (rules), dataclass
instances and class attributes, at any depth. Python's ``re`` patterns are translated to
ECMAScript from Python's own parse tree (``to_ecmascript``) and checked by recheck
(``check``), which looks for super-linear backtracking by automata theory, or by fuzzing
when a pattern has lookaround. RE2 patterns (``ai_pipeline.text.patterns``) run in linear
time by construction and need no checker.
"""

from __future__ import annotations

import bisect
import dataclasses
import functools
import hashlib
import importlib
import json
import os
import pkgutil
import re
import re._compiler as sre_compile  # type: ignore[import-not-found]
import re._constants as sre  # type: ignore[import-not-found]
import re._parser as sre_parse  # type: ignore[import-not-found]
import subprocess
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import re2  # type: ignore[import-untyped]

import ai_pipeline

RECHECK_VERSION = "4.5.0"
CACHE = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "ai-pipeline"
RECHECK = CACHE / f"recheck-{RECHECK_VERSION}" / "node_modules" / "recheck"
CHECKER_SCRIPT = Path(__file__).with_name("regex_audit.cjs")


@dataclass(frozen=True)
class Found:
    where: str  # "ai_pipeline.triage.rules._HEADING", "…RULES[3].pattern"
    pattern: Any  # re.Pattern[str] or an RE2 regexp


def is_re2(pattern: Any) -> bool:
    return isinstance(pattern, re2._Regexp)


def compiled_patterns() -> list[Found]:
    """Every compiled pattern reachable from a module of ``ai_pipeline``, once each (by the
    first name it was found under)."""
    found: dict[int, Found] = {}
    for info in pkgutil.walk_packages(ai_pipeline.__path__, "ai_pipeline."):
        module = importlib.import_module(info.name)
        for name, value in vars(module).items():
            for where, pattern in _patterns_in(value, f"{info.name}.{name}", set()):
                found.setdefault(id(pattern), Found(where, pattern))
    return list(found.values())


def _patterns_in(value: Any, where: str, seen: set[int]) -> Iterator[tuple[str, Any]]:
    if isinstance(value, re.Pattern) or is_re2(value):
        yield where, value
        return
    if id(value) in seen:
        return
    seen.add(id(value))
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _patterns_in(key, f"{where}[key {key!r}]", seen)
            yield from _patterns_in(item, f"{where}[{key!r}]", seen)
    elif isinstance(value, list | tuple | set | frozenset):
        for n, item in enumerate(value):
            yield from _patterns_in(item, f"{where}[{n}]", seen)
    elif isinstance(value, type) and value.__module__.startswith("ai_pipeline"):
        for name, item in vars(value).items():
            yield from _patterns_in(item, f"{where}.{name}", seen)
    elif dataclasses.is_dataclass(value) and type(value).__module__.startswith("ai_pipeline"):
        for field in dataclasses.fields(value):
            yield from _patterns_in(getattr(value, field.name), f"{where}.{field.name}", seen)


# ----------------------------------------------------------------- Python → ECMAScript
#
# A pattern's backtracking depends on which characters each of its parts accepts, not on the
# characters themselves. Each part that reads one character (a literal, a class, ``.``) is
# evaluated by Python's own engine, with the pattern's flags, over every code point; the
# code points are split into blocks that every part treats alike, and each block is written
# as one representative character. The ECMAScript pattern over representatives backtracks
# exactly as the Python one does over real text, whatever Unicode, case folding or ``\w``
# mean there, and stays small enough for recheck's automata.

Intervals = tuple[tuple[int, int], ...]
MAX_CODE_POINT = 0x10FFFF
_EVERY_CHARACTER = "".join(map(chr, range(MAX_CODE_POINT + 1)))
_READS_ONE = (sre.LITERAL, sre.NOT_LITERAL, sre.ANY, sre.IN)
_NEWLINE = ord("\n")
_ASCII_WORD = [ord(c) for c in "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_"]


def to_ecmascript(pattern: re.Pattern[str]) -> tuple[str, str]:
    """(source, flags) of an ECMAScript regex (``u`` mode) that backtracks as ``pattern``
    does. Exact for literals, classes, ``.``, case folding, groups, repeats (greedy and
    lazy), alternation, lookaround, ``\\b``/``\\B`` and ``^``/``$`` with MULTILINE. One
    approximation: ``$`` without MULTILINE is the end only (Python also stops before a final
    newline: one place fewer to stop, so no attack is hidden). Backreferences,
    conditionals, atomic groups and possessive repeats raise ``NotImplementedError``."""
    parsed = _parse(pattern)
    alphabet = alphabet_of(pattern)
    return _emit(parsed, parsed.state.flags, alphabet.classes), "u"


def _parse(pattern: re.Pattern[str]) -> Any:
    return sre_parse.parse(pattern.pattern, pattern.flags)


@functools.cache
def alphabet_of(pattern: re.Pattern[str]) -> _Alphabet:
    """The blocks of characters ``pattern`` cannot tell apart, one representative each."""
    parsed = _parse(pattern)
    flags = parsed.state.flags
    parts = {repr(node): _members(node, flags) for node in _one_character_parts(parsed)}
    # "\n" stands for itself (multiline anchors name it); word characters must stay word
    # characters for ECMAScript's \b, the rest must not.
    word = _members((sre.IN, [(sre.CATEGORY, sre.CATEGORY_WORD)]), flags)
    return _Alphabet(parts, word)


def _one_character_parts(sub: Any) -> Iterator[tuple[Any, Any]]:
    for op, av in sub:
        if op in _READS_ONE:
            yield op, av
        elif op is sre.BRANCH:
            for branch in av[1]:
                yield from _one_character_parts(branch)
        elif op is sre.SUBPATTERN:
            yield from _one_character_parts(av[3])
        elif op in (sre.MAX_REPEAT, sre.MIN_REPEAT):
            yield from _one_character_parts(av[2])
        elif op in (sre.ASSERT, sre.ASSERT_NOT):
            yield from _one_character_parts(av[1])


def _members(node: tuple[Any, Any], flags: int) -> Intervals:
    """The code points ``node`` accepts, by Python's engine itself."""
    op, av = node
    if op is sre.LITERAL and not flags & re.IGNORECASE:
        return ((av, av),)
    key = (repr(node), flags)
    if key not in _MEMBERS:
        state = sre_parse.State()
        state.flags = flags
        single = sre_compile.compile(sre_parse.SubPattern(state, [node]), flags)
        _MEMBERS[key] = _intervals(m.start() for m in single.finditer(_EVERY_CHARACTER))
    return _MEMBERS[key]


_MEMBERS: dict[tuple[str, int], Intervals] = {}


def _intervals(code_points: Iterable[int]) -> Intervals:
    out: list[tuple[int, int]] = []
    for cp in code_points:  # ascending
        if out and cp == out[-1][1] + 1:
            out[-1] = (out[-1][0], cp)
        else:
            out.append((cp, cp))
    return tuple(out)


class _Alphabet:
    """The blocks of code points that every part of a pattern treats alike, one character
    each, and each part as an ECMAScript class of those characters."""

    def __init__(self, parts: dict[str, Intervals], word: Intervals):
        sets = [*parts.values(), ((_NEWLINE, _NEWLINE),), word]
        cuts = {0, MAX_CODE_POINT + 1} | {b for s in sets for lo, hi in s for b in (lo, hi + 1)}
        self._starts = sorted(cuts)[:-1]
        self._signatures = [tuple(_contains(s, start) for s in sets) for start in self._starts]
        blocks: dict[tuple[bool, ...], list[tuple[int, int]]] = {}
        for start, end, signature in zip(
            self._starts, sorted(cuts)[1:], self._signatures, strict=True
        ):
            blocks.setdefault(signature, []).append((start, end))
        self._representative = _representatives(blocks)
        self.classes = {key: self._class(members) for key, members in parts.items()}

    def stand_in(self, cp: int) -> int:
        """The character that stands for ``cp``'s block."""
        index = bisect.bisect_right(self._starts, cp) - 1
        return self._representative[self._signatures[index]]

    def _class(self, members: Intervals) -> str:
        chosen = sorted(
            {
                self._representative[signature]
                for start, signature in zip(self._starts, self._signatures, strict=True)
                if _contains(members, start)
            }
        )
        if len(chosen) == 1:
            return _char(chosen[0])
        return "[" + "".join(_char(cp) for cp in chosen) + "]"


def _representatives(
    blocks: dict[tuple[bool, ...], list[tuple[int, int]]],
) -> dict[tuple[bool, ...], int]:
    """A distinct character per block: "\n" for itself, an ASCII word character for a block of
    word characters, else a non-word one; a member of the block when one fits (readable
    attack strings)."""
    taken: set[int] = set()
    chosen: dict[tuple[bool, ...], int] = {}
    for key, segments in sorted(blocks.items(), key=lambda item: item[1][0]):
        is_word = key[-1]  # the word set is the last one
        members = (cp for lo, hi in segments for cp in range(lo, min(hi, lo + 256)))
        fits = [cp for cp in members if (cp in _ASCII_WORD) == is_word and cp not in taken]
        if (_NEWLINE, _NEWLINE + 1) in segments:
            fits = [_NEWLINE]
        if not fits:
            pool = _ASCII_WORD if is_word else range(0x100, MAX_CODE_POINT)
            fits = [next(cp for cp in pool if cp not in taken and cp != _NEWLINE)]
        ascii_first = sorted(fits, key=lambda cp: (not 0x20 < cp < 0x7F, cp))
        chosen[key] = ascii_first[0]
        taken.add(ascii_first[0])
    return chosen


def _contains(intervals: Intervals, cp: int) -> bool:
    index = bisect.bisect_right(intervals, (cp, MAX_CODE_POINT + 1)) - 1
    return index >= 0 and intervals[index][0] <= cp <= intervals[index][1]


def _char(cp: int) -> str:
    return f"\\u{{{cp:X}}}"


def _emit(sub: Any, flags: int, classes: dict[str, str]) -> str:
    # A part's key is its repr: the same literal or class anywhere gets the same class.
    return "".join(_node(op, av, flags, classes) for op, av in sub)


def _node(op: Any, av: Any, flags: int, classes: dict[str, str]) -> str:
    if op in _READS_ONE:
        return classes[repr((op, av))]
    if op is sre.BRANCH:
        return "(?:" + "|".join(_emit(branch, flags, classes) for branch in av[1]) + ")"
    if op is sre.SUBPATTERN:
        group, add_flags, del_flags, body = av
        if add_flags or del_flags:
            raise NotImplementedError("scoped inline flags")
        return ("(" if group is not None else "(?:") + _emit(body, flags, classes) + ")"
    if op in (sre.MAX_REPEAT, sre.MIN_REPEAT):
        low, high, body = av
        short = {(0, sre.MAXREPEAT): "*", (1, sre.MAXREPEAT): "+", (0, 1): "?"}
        quantifier = short.get((low, high)) or (
            f"{{{low},}}" if high is sre.MAXREPEAT else f"{{{low},{high}}}"
        )
        lazy = "?" if op is sre.MIN_REPEAT else ""
        atom = len(body) == 1 and body[0][0] in _READS_ONE
        inner = _emit(body, flags, classes)
        return f"{inner if atom else f'(?:{inner})'}{quantifier}{lazy}"
    if op is sre.AT:
        return _anchor(av, flags)
    if op in (sre.ASSERT, sre.ASSERT_NOT):
        direction, body = av
        behind = "<" if direction < 0 else ""
        sign = "=" if op is sre.ASSERT else "!"
        return f"(?{behind}{sign}{_emit(body, flags, classes)})"
    raise NotImplementedError(f"{op} has no ECMAScript translation here")


def _anchor(code: Any, flags: int) -> str:
    multiline = bool(flags & re.MULTILINE)
    if code is sre.AT_BEGINNING:
        return "(?<![^\\n])" if multiline else "^"
    if code is sre.AT_BEGINNING_STRING:
        return "^"
    if code is sre.AT_END:
        return "(?![^\\n])" if multiline else "$"
    if code is sre.AT_END_STRING:
        return "$"
    if code is sre.AT_BOUNDARY:
        return "\\b"
    if code is sre.AT_NON_BOUNDARY:
        return "\\B"
    raise NotImplementedError(f"anchor {code}")


# -------------------------------------------------------------------------------- recheck


@dataclass(frozen=True)
class Verdict:
    status: str  # "safe", "vulnerable" or "unknown"
    checker: str  # "automaton" or "fuzz"
    complexity: str  # "linear", "2nd degree polynomial", "exponential"…
    attack: str  # recheck's attack string as an expression, when vulnerable
    error: str


def check(patterns: list[re.Pattern[str]], node: str, recheck: Path = RECHECK) -> list[Verdict]:
    """recheck's verdict on each pattern, in order. A verdict depends only on the pattern,
    this translation and recheck's version (its fuzzer has a fixed seed), so verdicts are
    kept in CACHE: a run checks (and translates) only the patterns it has not seen."""
    keys = [_verdict_key(p) for p in patterns]
    known = _load_verdicts()
    todo = [(key, p) for key, p in zip(keys, patterns, strict=True) if key not in known]
    if todo:
        requests = [dict(zip(("source", "flags"), to_ecmascript(p), strict=True)) for _, p in todo]
        done = subprocess.run(
            [node, str(CHECKER_SCRIPT), str(recheck)],
            input=json.dumps(requests),
            capture_output=True,
            text=True,
            check=True,
            timeout=1500,
        )
        answers = dict(zip((key for key, _ in todo), json.loads(done.stdout), strict=True))
        _save_verdicts({**known, **{k: a for k, a in answers.items() if a["status"] != "unknown"}})
        known = {**known, **answers}
    return [Verdict(**known[key]) for key in keys]


def _verdict_key(pattern: re.Pattern[str]) -> str:
    checker = hashlib.sha256(Path(__file__).read_bytes() + CHECKER_SCRIPT.read_bytes())
    return f"{RECHECK_VERSION} {checker.hexdigest()[:16]} {pattern.flags} {pattern.pattern}"


VERDICTS = CACHE / "recheck-verdicts.json"


def _load_verdicts() -> dict[str, dict[str, str]]:
    try:
        loaded: dict[str, dict[str, str]] = json.loads(VERDICTS.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return loaded


def _save_verdicts(verdicts: dict[str, dict[str, str]]) -> None:
    VERDICTS.parent.mkdir(parents=True, exist_ok=True)
    partial = VERDICTS.with_suffix(f".{os.getpid()}.tmp")
    partial.write_text(json.dumps(verdicts), encoding="utf-8")
    partial.replace(VERDICTS)
