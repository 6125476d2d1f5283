"""User regular expressions: the engine each runs on (modemd.payload.regexes).

A pattern that cannot backtrack (literals, classes, anchors; no repetition, alternation,
group or escape outside a short list) runs on ``re``, so a config whose rules only say
``text = "^ID="`` does not load the ``regex`` module (1.3 MiB). Every other pattern runs on
``regex`` with its time budget. Both must find exactly what ``regex`` finds.
"""

from __future__ import annotations

import re

import pytest
import regex
from hypothesis import given, settings
from hypothesis import strategies as st

from modemd.payload.regexes import PatternError, compile_pattern, search, without_backtracking
from tests.helpers import run_python

SIMPLE = ["^ID=", "^ID=PUMP", "STATUS", "^T[0-9]$", r"\d\d:\d\d", "^a.b$", "[A-Z][A-Z]=",
          r"^\+49", "x y", "ÄÖÜ", r"\.", "[^,;]", r"\*", "[*+?]", r"^\(1\)$", r"[\d.]"]
# \w \s \b: the two engines' Unicode tables differ at the edges (combining marks, U+001C)
NOT_SIMPLE = ["^ID=.*", "a+", "a?", "a{2}", "(a)", "a|b", "(?i)id=", r"(a)\1", r"\p{L}",
              "[[:digit:]]", "(?P<t>[0-9]+)", r"\N{DIGIT ONE}", r"\x41", r"\bALARM\b", r"\w",
              r"\s", "[]a]", "[^]a]", "[a[]", "[x~~y]", "[a&&b]"]


@pytest.mark.parametrize("pattern", SIMPLE)
def test_a_pattern_without_backtracking_runs_on_re(pattern: str) -> None:
    assert without_backtracking(pattern)
    assert isinstance(compile_pattern(pattern), re.Pattern)


@pytest.mark.parametrize("pattern", NOT_SIMPLE)
def test_every_other_pattern_runs_on_regex(pattern: str) -> None:
    assert not without_backtracking(pattern)
    assert isinstance(compile_pattern(pattern), regex.Pattern)


@pytest.mark.parametrize("pattern", ["[", "^ID=[", "(", "a{2,1}", r"\p{Nope}", "[z-a]", "[a--z]"])
def test_a_bad_pattern_is_one_error_whichever_engine(pattern: str) -> None:
    with pytest.raises(PatternError):
        compile_pattern(pattern)


_PIECES = st.sampled_from(["a", "b", "ID", "=", "0", "9", ".", "^", "$", "[0-9]", "[^a]",
                           r"\d", r"\w", r"\s", r"\b", r"\.", r"\+", " ", "Ä", "[a-c]"])


@settings(max_examples=400, deadline=None)
@given(pieces=st.lists(_PIECES, min_size=1, max_size=6),
       text=st.text(alphabet="abID=09. +Äc\nx", max_size=30))
def test_re_finds_what_regex_finds(pieces: list[str], text: str) -> None:
    pattern = "".join(pieces)
    try:
        expected = regex.compile(pattern).search(text)
    except regex.error:
        with pytest.raises(PatternError):
            compile_pattern(pattern)
        return
    compiled = compile_pattern(pattern)
    found = search(compiled, text, rule="r", what="match.text")
    assert (found and (found.span(), found.group())) == \
        (expected and (expected.span(), expected.group()))


def test_simple_rules_leave_the_regex_module_unloaded() -> None:
    probe = ("import sys\n"
             "from modemd.payload.regexes import compile_pattern, search\n"
             "found = search(compile_pattern('^ID=PUMP'), 'ID=PUMP01;BAT=3.7', rule='r',"
             " what='match.text')\n"
             "print(found.group(), 'regex' in sys.modules)\n"
             "compile_pattern('^ID=(?P<id>[A-Z0-9]+)')\n"
             "print('regex' in sys.modules)\n")
    done = run_python(probe)
    assert done.stdout.split() == ["ID=PUMP", "False", "True"], done.stderr
