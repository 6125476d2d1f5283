"""User regular expressions (a rule's ``match.text`` and ``pattern``), run with a time budget.

Engine: the ``regex`` module, not ``re`` and not google-re2. ``re`` backtracks without a bound
and holds the GIL while it does: ``^R(a+)+$`` against one SMS froze every thread, SIGTERM
included. ``regex`` takes a ``timeout=`` per match and releases the GIL while matching, so a
pathological pattern costs at most the budget for one message and the modem threads keep
journalling meanwhile. It reads the ``re`` syntax users already wrote (named groups,
lookaround, backreferences), which google-re2 refuses, and it has wheels for the Raspberry Pi's
ARM builds. A linear-time engine would bound the cost more tightly; the budget is what makes
``regex`` safe, and a message that exceeds it is dead-lettered with the reason.
"""

from __future__ import annotations

from functools import lru_cache
from typing import TYPE_CHECKING, Any

from modemd.errors import PayloadError

if TYPE_CHECKING:
    import regex

#: Seconds one match may take. Real device payloads match in microseconds; the module checks
#: the clock as it goes, so a runaway match stops a little after this (~0.25 s measured).
REGEX_BUDGET = 0.1

# The module is loaded on the first pattern compiled: a config without regex rules does not
# carry it. Pattern and Match are for annotations (importers take them under TYPE_CHECKING);
# RegexError is looked up when first used (module __getattr__).
if TYPE_CHECKING:
    Pattern = regex.Pattern[str]
    Match = regex.Match[str]
    RegexError = regex.error


def __getattr__(name: str) -> Any:
    if name == "RegexError":
        import regex

        return regex.error
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def compile_pattern(pattern: str) -> Pattern:
    """Compile *pattern* with the engine that will run it; raises :data:`RegexError`."""
    return _compiled(pattern)


@lru_cache(maxsize=256)
def _compiled(pattern: str) -> Pattern:
    import regex

    return regex.compile(pattern)


def search(pattern: Pattern, text: str, *, rule: str, what: str) -> Match | None:
    """``pattern.search(text)`` within :data:`REGEX_BUDGET`; PayloadError when it runs over."""
    try:
        return pattern.search(text, timeout=REGEX_BUDGET)
    except TimeoutError:
        raise PayloadError(
            f"{what} of rule {rule!r} exceeded its time budget of {REGEX_BUDGET:g} s on this "
            "message (a pattern that backtracks without bound?)",
            rule=rule,
        ) from None
