"""Sender numbers: E.164 normalisation, glob patterns and the per-modem allow-list.

Pure functions and small immutable helpers; no I/O.

Normalisation rules (:func:`normalise_e164`):

* ``"+49 151-234"`` → ``"+49151234"`` (separators dropped),
* ``"0049151..."`` → ``"+49151..."`` (international access prefix ``00``),
* ``"0151..."`` with ``default_country_code="49"`` → ``"+49151..."`` (national trunk prefix ``0``),
* ``"0151..."`` without a default country code, and short codes such as ``"22222"``: digits only,
* alphanumeric senders (``"ACME"``, ``"DHL Info"``) are returned untouched.

Patterns are shell globs (``*``, ``?``, ``[...]``) matched case-insensitively against the
normalised sender; their literal prefix is normalised the same way, so ``"0151*"`` with country
code 49 matches ``"+49151..."``.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Iterable, Mapping, Sequence
from functools import lru_cache

__all__ = [
    "AllowList",
    "SenderPatterns",
    "normalise_country_code",
    "normalise_e164",
    "normalise_pattern",
]

_SEPARATORS = str.maketrans("", "", " \t-().")
_GLOB_CHARS = frozenset("*?[]!")
_COUNTRY_CODE_RE = re.compile(r"[1-9][0-9]{0,2}")
MAX_PATTERN_LEN = 64


@lru_cache(maxsize=64)
def normalise_country_code(code: str | None) -> str | None:
    """``"+49"``, ``"0049"`` or ``"49"`` → ``"49"``; ``None``/``""`` → ``None``.

    Raises :class:`ValueError` for anything that is not a 1-3 digit country calling code.
    """
    if code is None:
        return None
    text = code.strip()
    if not text:
        return None
    if text.startswith("+"):
        text = text[1:]
    elif text.startswith("00"):
        text = text[2:]
    if not _COUNTRY_CODE_RE.fullmatch(text):
        raise ValueError(f"default country code {code!r} is not a 1-3 digit calling code")
    return text


def normalise_e164(number: str, default_country_code: str | None = None) -> str:
    """Return *number* in E.164 form (``+<cc><nsn>``) where that can be known.

    Alphanumeric senders are returned unchanged. A national number (leading ``0``) becomes
    international only when *default_country_code* is given; otherwise its digits are returned.
    """
    cc = normalise_country_code(default_country_code)
    compact = number.strip().translate(_SEPARATORS)
    plus = compact.startswith("+")
    body = compact[1:] if plus else compact
    if not body or not body.isascii() or not body.isdigit():
        return number
    if plus:
        return "+" + body
    if body.startswith("00") and len(body) > 2:
        return "+" + body[2:]
    if cc is not None and body.startswith("0") and not body.startswith("00") and len(body) > 1:
        return "+" + cc + body[1:]
    return body


def normalise_pattern(pattern: str, default_country_code: str | None = None) -> str:
    """Normalise the literal prefix of a sender glob the way :func:`normalise_e164` does."""
    cc = normalise_country_code(default_country_code)
    text = pattern.strip()
    literal = text
    for i, ch in enumerate(text):
        if ch in _GLOB_CHARS:
            literal = text[:i]
            break
    rest = text[len(literal) :]
    compact = literal.translate(_SEPARATORS)
    plus = compact.startswith("+")
    body = compact[1:] if plus else compact
    if not body.isascii() or not body.isdigit():
        # Alphanumeric (or empty) literal part: leave the pattern as written.
        return text if body else compact + rest
    if plus:
        return "+" + body + rest
    if body.startswith("00") and (len(body) > 2 or rest):
        return "+" + body[2:] + rest
    if cc is not None and body.startswith("0") and not body.startswith("00"):
        return "+" + cc + body[1:] + rest
    return body + rest


def pattern_problem(pattern: object) -> str | None:
    """Why *pattern* is not a usable sender pattern, or ``None`` if it is."""
    if not isinstance(pattern, str):
        return "sender pattern must be a string"
    text = pattern.strip()
    if not text:
        return "sender pattern must not be empty"
    if len(text) > MAX_PATTERN_LEN:
        return f"sender pattern longer than {MAX_PATTERN_LEN} characters"
    if not text.isprintable():
        return "sender pattern contains control characters"
    return None


class SenderPatterns:
    """A compiled set of sender globs; :meth:`matches` normalises the sender first."""

    __slots__ = ("_cc", "_regex", "patterns")

    def __init__(self, patterns: Iterable[str], *, default_country_code: str | None = None):
        self._cc = normalise_country_code(default_country_code)
        self.patterns: tuple[str, ...] = tuple(
            normalise_pattern(p, self._cc) for p in patterns
        )
        if self.patterns:
            joined = "|".join(f"(?:{fnmatch.translate(p)})" for p in self.patterns)
            self._regex: re.Pattern[str] | None = re.compile(joined, re.IGNORECASE)
        else:
            self._regex = None

    def __bool__(self) -> bool:
        return bool(self.patterns)

    def __repr__(self) -> str:
        return f"SenderPatterns({list(self.patterns)!r})"

    def matches(self, sender: str) -> bool:
        """True when *sender* (normalised here) matches any pattern. No patterns: no match."""
        return self.matches_normalised(normalise_e164(sender, self._cc))

    def matches_normalised(self, sender: str) -> bool:
        """:meth:`matches` for a sender already passed through :func:`normalise_e164`."""
        return self._regex is not None and self._regex.match(sender) is not None


class AllowList:
    """Per-modem sender allow-lists (exact E.164 numbers and glob patterns).

    ``AllowList({"modem1": ["+49151*", "+4917012345678"], "modem2": None})``: a modem mapped to
    ``None`` or not listed at all accepts every sender; a modem mapped to an empty list accepts
    none.
    """

    __slots__ = ("_cc", "_per_modem")

    def __init__(
        self,
        per_modem: Mapping[str, Sequence[str] | None],
        *,
        default_country_code: str | None = None,
    ) -> None:
        self._cc = normalise_country_code(default_country_code)
        self._per_modem: dict[str, SenderPatterns | None] = {}
        for modem, patterns in per_modem.items():
            if patterns is None:
                self._per_modem[modem] = None
                continue
            listed = [patterns] if isinstance(patterns, str) else list(patterns)
            for pattern in listed:
                problem = pattern_problem(pattern)
                if problem is not None:
                    raise ValueError(f"modem {modem!r}: {problem}: {pattern!r}")
            self._per_modem[modem] = SenderPatterns(listed, default_country_code=self._cc)

    def patterns_for(self, modem: str) -> tuple[str, ...] | None:
        """The normalised patterns of *modem*, or ``None`` when it is unrestricted."""
        patterns = self._per_modem.get(modem)
        return None if patterns is None else patterns.patterns

    def allows(self, modem: str, sender: str) -> bool:
        """True when *sender* may deliver to *modem*."""
        if modem not in self._per_modem:
            return True
        patterns = self._per_modem[modem]
        if patterns is None:
            return True
        return patterns.matches(sender)
