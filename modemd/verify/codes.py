"""Verification codes: keyed hashes, candidates in an SMS body, sealing a generated code.

Pure functions, no I/O. A code is never kept in clear: a challenge stores
``HMAC-SHA256(secret, salt || normalised code)`` with a random per-challenge salt, so equal
codes of two challenges do not look equal in the store and the hash is worthless without the
gateway's secret. A code modemd generates must reach the application once, in the ``pending``
result; until that result is published it waits in the outbox *sealed* (XOR with a keystream
derived from the secret and the salt), so it is not in clear in the store file either.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Literal

MatchMode = Literal["token", "exact", "keyword"]

CODE_RE = re.compile(r"^[A-Za-z0-9]{4,12}$")
#: A word of the body: letters and digits of any script, nothing else.
_TOKEN_RE = re.compile(r"[^\W_]+")
#: Codes typed in groups ("482 913") are joined; at most this many tokens per candidate.
_MAX_GROUPS = 3
SALT_BYTES = 16


def normalise_code(code: str) -> str:
    """Case does not matter; surrounding whitespace does not either."""
    return code.strip().casefold()


def code_hash(secret: bytes, salt: bytes, code: str) -> bytes:
    return hmac.new(secret, salt + normalise_code(code).encode("utf-8"), hashlib.sha256).digest()


def new_salt() -> bytes:
    return secrets.token_bytes(SALT_BYTES)


def generate_code(length: int) -> str:
    """A random numeric code of *length* digits (leading zeros kept)."""
    return f"{secrets.randbelow(10**length):0{length}d}"


def _keystream(secret: bytes, salt: bytes, size: int) -> bytes:
    stream = b""
    counter = 0
    while len(stream) < size:
        stream += hmac.new(secret, b"seal" + salt + counter.to_bytes(4, "big"),
                           hashlib.sha256).digest()
        counter += 1
    return stream[:size]


def seal(secret: bytes, salt: bytes, code: str) -> str:
    raw = code.encode("utf-8")
    return bytes(a ^ b for a, b in zip(raw, _keystream(secret, salt, len(raw)), strict=True)).hex()


def unseal(secret: bytes, salt: bytes, sealed: str) -> str:
    raw = bytes.fromhex(sealed)
    return bytes(a ^ b for a, b in zip(raw, _keystream(secret, salt, len(raw)),
                                       strict=True)).decode("utf-8")


@dataclass(frozen=True, slots=True)
class Candidates:
    """What in one SMS body could be a code, and where it stands (for masking)."""

    values: tuple[str, ...]
    spans: tuple[tuple[int, int], ...]

    def __bool__(self) -> bool:
        return bool(self.values)


def candidates(text: str, *, mode: MatchMode, keyword: str = "") -> Candidates:
    """The strings of *text* that are compared with a challenge's code.

    ``token``: every word of the body, and runs of up to three words separated only by
    spaces joined together ("482 913" is 482913); ``exact``: the whole body without its
    whitespace; ``keyword``: the word after *keyword* (and its groups), when the body starts
    with the keyword. Case never matters.
    """
    if mode == "exact":
        stripped = text.strip()
        compact = "".join(stripped.split())
        if not CODE_RE.match(compact):
            return Candidates((), ())
        start = text.index(stripped[0])
        return Candidates((compact,), ((start, start + len(stripped)),))
    words = [(m.group(), m.start(), m.end()) for m in _TOKEN_RE.finditer(text)]
    if mode == "keyword":
        if not words or words[0][0].casefold() != keyword.strip().casefold():
            return Candidates((), ())
        words = words[1:]
    values: list[str] = []
    spans: list[tuple[int, int]] = []
    for value, start, end in _groups(text, words):
        if CODE_RE.match(value):
            values.append(value)
            spans.append((start, end))
    return Candidates(tuple(values), tuple(spans))


def _groups(text: str, words: list[tuple[str, int, int]]) -> Iterator[tuple[str, int, int]]:
    for i, (_, start, _end) in enumerate(words):
        joined = ""
        for j in range(i, min(i + _MAX_GROUPS, len(words))):
            value, w_start, w_end = words[j]
            if j > i and text[words[j - 1][2]:w_start].strip(" ") != "":
                break  # only plain spaces join groups
            joined += value
            yield joined, start, w_end


def mask(text: str, spans: tuple[tuple[int, int], ...]) -> str:
    """*text* with every character inside *spans* (but spaces) replaced by ``*``."""
    chars = list(text)
    for start, end in spans:
        for i in range(start, end):
            if not chars[i].isspace():
                chars[i] = "*"
    return "".join(chars)


def matching_span(secret: bytes, salt: bytes, stored_hash: bytes,
                  found: Candidates) -> tuple[int, int] | None:
    """Where the code behind *stored_hash* stands among the candidates, if it does."""
    for value, span in zip(found.values, found.spans, strict=True):
        if hmac.compare_digest(code_hash(secret, salt, value), stored_hash):
            return span
    return None


def guesses(text: str, found: Candidates) -> tuple[tuple[int, int], ...]:
    """The spans of candidates that look like a mistyped code: each word of it holds a digit."""
    return tuple(span for span in found.spans
                 if all(any(c.isdigit() for c in word)
                        for word in _TOKEN_RE.findall(text[span[0]:span[1]])))
