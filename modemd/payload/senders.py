"""Sender numbers: E.164 normalisation, glob patterns and the per-modem allow-list.

Pure functions and small immutable helpers; no I/O.

Normalisation rules (:func:`normalise_e164`):

* ``"+49 151-234"`` → ``"+49151234"`` (separators dropped),
* ``"0049151..."`` → ``"+49151..."`` (international access prefix ``00``),
* a national number is read with the numbering plan of the country of
  ``default_country_code`` (the ``phonenumbers`` package): ``"0151..."`` in Germany,
  ``"333 123 4567"`` and ``"06 1234 5678"`` in Italy (no trunk prefix, the 0 of a fixed line
  stays), ``"212 555 1234"`` in the US, ``"8 916 ..."`` in Russia all become ``+<cc>...``;
* without a default country code, and for short codes such as ``"22222"``: digits only,
* alphanumeric senders (``"ACME"``, ``"DHL Info"``) are returned untouched.

:func:`sender_type` says what kind of address a sender is: ``international``, ``national``,
``alphanumeric`` or ``short_code``, from the address's type of number where the network gave
one (a number that arrives without ``+`` but typed international is international).

Patterns are shell globs (``*``, ``?``, ``[...]``) matched case-insensitively against the
normalised sender; their literal prefix is normalised the same way, so ``"0151*"`` with country
code 49 matches ``"+49151..."``. A numeric pattern (digits, ``+`` and glob characters only)
never matches an alphanumeric sender, however it is spelt: ``+49151*`` does not let
``+49151ABC`` or an alphanumeric ``0151 1234`` through.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Iterable, Mapping, Sequence
from functools import lru_cache
from typing import Literal

__all__ = [
    "SENDER_TYPES",
    "AllowList",
    "SenderPatterns",
    "SenderType",
    "country_code_problem",
    "is_numeric_pattern",
    "normalise_country_code",
    "normalise_e164",
    "normalise_pattern",
    "sender_type",
]

SenderType = Literal["international", "national", "alphanumeric", "short_code"]
SENDER_TYPES: tuple[SenderType, ...] = ("international", "national", "alphanumeric",
                                        "short_code")
#: short codes are at most this many digits (3GPP leaves it to each country; 3-6 is usual)
SHORT_CODE_MAX_DIGITS = 6

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


@lru_cache(maxsize=64)
def _region(cc: str) -> str | None:
    """The main region of a calling code (``"39"`` -> ``"IT"``, ``"1"`` -> ``"US"``)."""
    import phonenumbers  # here and below: loaded only when a number needs its plan

    region = phonenumbers.region_code_for_country_code(int(cc))
    return None if region == phonenumbers.UNKNOWN_REGION else region


@lru_cache(maxsize=64)
def _trunk_prefix(cc: str) -> str | None:
    """The national (trunk) prefix of a country: ``"0"`` in Germany, ``"8"`` in Russia,
    ``"1"`` in the US, none in Italy."""
    from phonenumbers import PhoneMetadata

    region = _region(cc)
    metadata = PhoneMetadata.metadata_for_region(region) if region else None
    return metadata.national_prefix if metadata is not None else None


@lru_cache(maxsize=4096)
def _national_to_e164(digits: str, cc: str) -> str | None:
    """A national number read with its country's numbering plan, or None if it is not one."""
    import phonenumbers

    region = _region(cc)
    if region is None:
        return None
    try:
        parsed = phonenumbers.parse(digits, region)
    except phonenumbers.NumberParseException:
        return None
    if phonenumbers.is_valid_number(parsed):
        return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)
    return None


@lru_cache(maxsize=4096)
def _national_form(e164: str, cc: str) -> str | None:
    """``+4915112345678`` -> ``015112345678`` when the number is of country *cc*."""
    import phonenumbers

    if not e164.startswith("+" + cc):
        return None
    try:
        parsed = phonenumbers.parse(e164, None)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_valid_number(parsed):
        return None
    national = phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.NATIONAL)
    digits = "".join(c for c in national if c.isdigit())
    return digits or None


def country_code_problem(code: str | None) -> str | None:
    """Why *code* is not a country calling code in use (``"999"``), or None."""
    try:
        cc = normalise_country_code(code)
    except ValueError as exc:
        return str(exc)
    if cc is not None and _region(cc) is None:
        return f"{code!r} is not a country calling code in use (e.g. 49, 39, 1, 7)"
    return None


def normalise_e164(number: str, default_country_code: str | None = None, *,
                   kind: str | None = None) -> str:
    """Return *number* in E.164 form (``+<cc><nsn>``) where that can be known.

    Alphanumeric senders are returned unchanged (also when *kind*, the address's type of
    number, says so). A national number becomes international only when
    *default_country_code* is given (read with that country's numbering plan); otherwise
    its digits are returned. Short codes stay digits.
    """
    if kind == "alphanumeric":
        return number
    cc = normalise_country_code(default_country_code)
    compact = number.strip().translate(_SEPARATORS)
    plus = compact.startswith("+")
    body = compact[1:] if plus else compact
    if not body or not body.isascii() or not body.isdigit():
        return number
    if plus or kind == "international":
        # "+0049...": some modems put a '+' before the 00 prefix; no country code starts with 0
        return "+" + (body[2:] if body.startswith("00") and len(body) > 4 else body)
    if body.startswith("00") and len(body) > 2:
        return "+" + body[2:]
    if cc is None or kind in ("abbreviated", "network"):
        return body
    e164 = _national_to_e164(body, cc)
    if e164 is not None:
        return e164
    trunk = _trunk_prefix(cc)
    short = len(body) <= SHORT_CODE_MAX_DIGITS and not body.startswith("0")
    if (trunk and body.startswith(trunk) and not body.startswith("00")
            and len(body) > len(trunk) and not short):
        # not in the numbering plan (yet): the trunk prefix still says "a national number"
        return "+" + cc + body[len(trunk):]
    return body


def sender_type(number: str, kind: str | None = None) -> SenderType:
    """What kind of address *number* is.

    *kind* is the address's type of number as the network gave it (``Address.kind``:
    ``international``, ``national``, ``alphanumeric``, ``abbreviated``, ``network``,
    ``subscriber``, ``unknown``); without it the text alone decides.
    """
    if kind == "alphanumeric":
        return "alphanumeric"
    compact = number.strip().translate(_SEPARATORS)
    plus = compact.startswith("+")
    body = compact[1:] if plus else compact
    if not body or not body.isascii() or not body.isdigit():
        return "alphanumeric"
    if plus or kind == "international" or (body.startswith("00") and len(body) > 4):
        return "international"
    if kind in ("abbreviated", "network") or (
            len(body) <= SHORT_CODE_MAX_DIGITS and not body.startswith("0")):
        return "short_code"
    return "national"


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
    trunk = _trunk_prefix(cc) if cc is not None else None
    if trunk and body.startswith(trunk) and not body.startswith("00"):
        return "+" + cc + body[len(trunk):] + rest  # type: ignore[operator]
    return body + rest


def is_numeric_pattern(pattern: str) -> bool:
    """A pattern for numbers: digits (or ``+``) and glob characters only, at least one digit."""
    compact = pattern.strip().translate(_SEPARATORS)
    return any(c.isdigit() for c in compact) and all(
        c.isdigit() or c in "+*?[]!-" for c in compact)


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

    __slots__ = ("_cc", "_named", "_regex", "patterns")

    def __init__(self, patterns: Iterable[str], *, default_country_code: str | None = None):
        self._cc = normalise_country_code(default_country_code)
        self.patterns: tuple[str, ...] = tuple(
            normalise_pattern(p, self._cc) for p in patterns
        )
        self._regex = self._compile(self.patterns)
        # what an alphanumeric sender may match: the patterns that are not for numbers
        self._named = self._compile(tuple(p for p in self.patterns if not is_numeric_pattern(p)))

    @staticmethod
    def _compile(patterns: tuple[str, ...]) -> re.Pattern[str] | None:
        if not patterns:
            return None
        joined = "|".join(f"(?:{fnmatch.translate(p)})" for p in patterns)
        return re.compile(joined, re.IGNORECASE)

    def __bool__(self) -> bool:
        return bool(self.patterns)

    def __repr__(self) -> str:
        return f"SenderPatterns({list(self.patterns)!r})"

    def matches(self, sender: str, *, kind: str | None = None) -> bool:
        """True when *sender* (normalised here) matches any pattern. No patterns: no match.

        *kind* is the address's type of number (``alphanumeric`` ...), where known."""
        alphanumeric = sender_type(sender, kind) == "alphanumeric"
        return self.matches_normalised(normalise_e164(sender, self._cc, kind=kind),
                                       alphanumeric=alphanumeric)

    def matches_normalised(self, sender: str, *, alphanumeric: bool | None = None) -> bool:
        """:meth:`matches` for a sender already passed through :func:`normalise_e164`.

        An alphanumeric sender (*alphanumeric*, or by its text when not given) is matched
        against the non-numeric patterns only. A numeric sender is also tried in its national
        form, so ``06*`` with country code 39 matches ``+390612345678``."""
        if alphanumeric is None:
            alphanumeric = sender_type(sender) == "alphanumeric"
        if alphanumeric:
            return self._named is not None and self._named.match(sender) is not None
        if self._regex is None:
            return False
        if self._regex.match(sender) is not None:
            return True
        national = _national_form(sender, self._cc) if self._cc else None
        return national is not None and self._regex.match(national) is not None


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

    def allows(self, modem: str, sender: str, *, kind: str | None = None) -> bool:
        """True when *sender* (of type of number *kind*, where known) may deliver to *modem*."""
        if modem not in self._per_modem:
            return True
        patterns = self._per_modem[modem]
        if patterns is None:
            return True
        return patterns.matches(sender, kind=kind)
