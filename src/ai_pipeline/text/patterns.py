"""Regular expressions over text from outside the service, in time linear in the text.

Reports, tracker answers, webhook payloads and LLM output are written by strangers, and a
backtracking engine (Python's ``re``) can spend minutes on a few KiB crafted against a
pattern: ``^\\W*(?:-+)?\\W*$`` is cubic on a field of dashes ending in a letter. RE2 compiles
a pattern to an automaton and reads each character a bounded number of times, whatever
the pattern and the text, so a pattern compiled here cannot be turned against us.

What RE2 does not have, and how patterns here do without it:

- no lookaround and no backreferences: match the context in a group of its own and
  replace or keep only the part that matters, or check what follows in code;
- ``\\w``, ``\\d``, ``\\s`` and ``\\b`` are ASCII (a non-ASCII letter is not a word
  character): write ``[\\pL\\pN_]`` where Unicode letters must count;
- ``$`` without ``(?m)`` is the very end of the text (Python's also matches before a final
  newline);
- flags are written inline: ``(?i)``, ``(?m)``, ``(?s)``;
- ``sub`` takes a function, never a template: the binding's templates mangle non-ASCII
  text (``"@\u200b"`` came out as ``"@â\x80\x8b"``).

Patterns that feed the triage models' features (``triage/features.py``,
``type_features.py``, ``security.py``) stay on Python's ``re`` with its Unicode
semantics, so the shipped model's features do not move; tests/unit/test_linear_patterns.py
proves with a ReDoS checker that each of those cannot backtrack super-linearly.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any, Protocol, cast

import re2  # type: ignore[import-untyped]


class Match(Protocol):
    """What an RE2 match offers (as ``re.Match`` does; group numbers, not names, for
    ``start`` and ``end``)."""

    @property
    def string(self) -> str: ...

    def group(self, group: int | str = 0, /) -> str | Any: ...

    def groups(self) -> tuple[str | Any, ...]: ...

    def start(self, group: int = 0, /) -> int: ...

    def end(self, group: int = 0, /) -> int: ...


class Pattern(Protocol):
    @property
    def pattern(self) -> str: ...

    def search(self, text: str, /) -> Match | None: ...

    def match(self, text: str, /) -> Match | None: ...

    def fullmatch(self, text: str, /) -> Match | None: ...

    def finditer(self, text: str, /) -> Iterator[Match]: ...

    def findall(self, text: str, /) -> list[Any]: ...

    def sub(self, replace: Callable[[Match], str], text: str, count: int = 0, /) -> str: ...


def linear(pattern: str) -> Pattern:
    """``pattern`` compiled by RE2 (raises ``re2.error`` on syntax RE2 lacks)."""
    return cast(Pattern, re2.compile(pattern))


def escape(text: str) -> str:
    """``text`` as a pattern matching exactly it."""
    return cast(str, re2.escape(text))
