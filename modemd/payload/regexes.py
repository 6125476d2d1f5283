r"""User regular expressions (a rule's ``match.text`` and ``pattern``), run with a time budget.

Engine: the ``regex`` module, not ``re`` and not google-re2. ``re`` backtracks without a bound
and holds the GIL while it does: ``^R(a+)+$`` against one SMS froze every thread, SIGTERM
included. ``regex`` takes a ``timeout=`` per match and releases the GIL while matching, so a
pathological pattern costs at most the budget for one message and the modem threads keep
journalling meanwhile. It reads the ``re`` syntax users already wrote (named groups,
lookaround, backreferences), which google-re2 refuses, and it has wheels for the Raspberry Pi's
ARM builds. A linear-time engine would bound the cost more tightly; the budget is what makes
``regex`` safe, and a message that exceeds it is dead-lettered with the reason.

A pattern that cannot backtrack runs on ``re`` instead (:func:`without_backtracking`:
literals, ``.``, anchors, ``\d`` and sets of those; no repetition, alternation or group), in
time linear in the text, and finds the same. Rules that only say ``text = "^ID="`` then do
not load ``regex`` (1.3 MiB of a running daemon).
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import TYPE_CHECKING

from modemd.errors import PayloadError

if TYPE_CHECKING:
    import regex

__all__ = ["REGEX_BUDGET", "PatternError", "compile_pattern", "search", "without_backtracking"]

#: Seconds one match may take. Real device payloads match in microseconds; the module checks
#: the clock as it goes, so a runaway match stops a little after this (~0.25 s measured).
REGEX_BUDGET = 0.1

# Pattern and Match are for annotations (importers take them under TYPE_CHECKING).
if TYPE_CHECKING:
    Pattern = regex.Pattern[str] | re.Pattern[str]
    Match = regex.Match[str] | re.Match[str]


class PatternError(ValueError):
    """A pattern neither engine accepts; the message is the engine's."""


# Escapes that mean the same in both engines: digits, and any ASCII punctuation as itself.
# (\w, \s and \b differ at the edges of their Unicode tables, so they go to regex.)
_SAME_ESCAPES = frozenset("dD") | frozenset(r"""!"#$%&'()*+,-./:;<=>?@[\]^_`{|}~""")
_REPEATS_OR_GROUPS = frozenset("*+?{}|()")
_SET_OPERATIONS = frozenset({"--", "&&", "||", "~~"})


def without_backtracking(pattern: str) -> bool:
    r"""Whether *pattern* is literals, ``.``, ``^``, ``$``, ``\d``, escaped punctuation and
    sets of those, which no engine can backtrack on: nothing repeats and nothing branches."""
    in_set = False
    index = 0
    while index < len(pattern):
        char = pattern[index]
        if char == "\\":
            if index + 1 >= len(pattern) or pattern[index + 1] not in _SAME_ESCAPES:
                return False
            index += 2
            continue
        if in_set:
            # a nested set, a POSIX class or a set operation: regex's own syntax (re warns)
            if char == "[" or pattern[index:index + 2] in _SET_OPERATIONS:
                return False
            in_set = char != "]"
        elif char == "[":
            start = index + 2 if pattern.startswith("[^", index) else index + 1
            if pattern.startswith("]", start):  # "[]...]": a literal ']' in re only
                return False
            in_set = True
            index = start
            continue
        elif char in _REPEATS_OR_GROUPS:
            return False
        index += 1
    return not in_set


def compile_pattern(pattern: str) -> Pattern:
    """Compile *pattern* with the engine that will run it; raises :class:`PatternError`."""
    return _compiled(pattern)


@lru_cache(maxsize=256)
def _compiled(pattern: str) -> Pattern:
    if without_backtracking(pattern):
        try:
            return re.compile(pattern)
        except re.error as exc:
            raise PatternError(str(exc)) from None
    import regex

    try:
        return regex.compile(pattern)
    except regex.error as exc:
        raise PatternError(str(exc)) from None


def search(pattern: Pattern, text: str, *, rule: str, what: str) -> Match | None:
    """``pattern.search(text)`` within :data:`REGEX_BUDGET`; PayloadError when it runs over."""
    if isinstance(pattern, re.Pattern):
        return pattern.search(text)  # linear: nothing in it can backtrack
    try:
        return pattern.search(text, timeout=REGEX_BUDGET)
    except TimeoutError:
        raise PayloadError(
            f"{what} of rule {rule!r} exceeded its time budget of {REGEX_BUDGET:g} s on this "
            "message (a pattern that backtracks without bound?)",
            rule=rule,
        ) from None
