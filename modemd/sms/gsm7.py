"""GSM 7 bit default alphabet and national language tables (TS 23.038 6.1.2.1, 6.2.1, Annex A).

Septets are handled unpacked (one septet per byte, 0..0x7F) by :func:`encode_gsm7` and
:func:`decode_gsm7`, and bit-packed (least significant bit first) by :func:`pack_septets` and
:func:`unpack_septets`.
"""

from __future__ import annotations

from functools import lru_cache

from modemd.sms.gsm7_tables import ESCAPE, LOCKING_SHIFT, SINGLE_SHIFT, Table

DEFAULT_LANGUAGE = 0
REPLACEMENT = "\ufffd"


def pack_septets(septets: bytes, fill_bits: int = 0) -> bytes:
    """Pack septets into octets, starting ``fill_bits`` zero bits in (the UDH padding)."""
    if any(s > 0x7F for s in septets):
        raise ValueError("a septet is 0..0x7F")
    total_bits = fill_bits + 7 * len(septets)
    value = 0
    for index, septet in enumerate(septets):
        value |= septet << (fill_bits + 7 * index)
    return value.to_bytes((total_bits + 7) // 8, "little")


# Per-octet tables for unpacking: septet k of each 7-octet group is made of octet k shifted
# left by k and octet k-1 shifted right by 8-k (TS 23.038 6.1.2.1.1).
_SHIFTED_LEFT = [bytes((octet << k) & 0x7F for octet in range(256)) for k in range(8)]
_SHIFTED_RIGHT = [bytes(octet >> (8 - k) for octet in range(256)) for k in range(8)]


def unpack_septets(data: bytes, count: int, fill_bits: int = 0) -> bytes:
    """Read ``count`` septets from packed octets, skipping ``fill_bits`` bits first.

    Reads only whole septets that are present: fewer than ``count`` come back if ``data`` is
    short, which is how the lenient decoder recovers a truncated message. Works a whole
    column of 7-octet groups at a time with ``bytes.translate``, which keeps decoding cheap.
    """
    available = max(0, (8 * len(data) - fill_bits) // 7)
    count = min(count, available)
    if count <= 0:
        return b""
    if fill_bits:
        data = (int.from_bytes(data, "little") >> fill_bits).to_bytes(len(data), "little")
    groups = (count + 7) // 8
    data = data[: 7 * groups].ljust(7 * groups, b"\0")
    out = bytearray(8 * groups)
    out[0::8] = data[0::7].translate(_SHIFTED_LEFT[0])
    for k in range(1, 7):
        high = int.from_bytes(data[k::7].translate(_SHIFTED_LEFT[k]), "big")
        low = int.from_bytes(data[k - 1 :: 7].translate(_SHIFTED_RIGHT[k]), "big")
        out[k::8] = (high | low).to_bytes(groups, "big")
    out[7::8] = data[6::7].translate(_SHIFTED_RIGHT[7])
    return bytes(out[:count])


@lru_cache(maxsize=64)
def _decode_tables(locking: int, single: int) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """Lookup tables with every gap filled, so the decoder needs no branches per septet.

    An escape followed by a septet the single shift table leaves undefined shows the locking
    table's character (TS 23.038 6.2.1.1 note); a septet undefined in the locking table shows
    U+FFFD; escape-escape (reserved for a further extension table) shows a space.
    """
    lock: Table = LOCKING_SHIFT[locking]
    shift: Table = SINGLE_SHIFT[single]
    plain = tuple(REPLACEMENT if ch is None else ch for ch in lock)
    escaped = tuple(
        " " if index == ESCAPE else (ch if ch is not None else plain[index])
        for index, ch in enumerate(shift)
    )
    return plain, escaped


def decode_gsm7(
    septets: bytes,
    locking: int = DEFAULT_LANGUAGE,
    single: int = DEFAULT_LANGUAGE,
    notes: list[str] | None = None,
) -> str:
    """Turn unpacked septets into text with the given locking and single shift tables.

    ``locking``/``single`` are national language identifiers; ones without a table fall back
    to the default table, as do values the caller could not validate. Oddities (an undefined
    septet, a trailing escape) are appended to ``notes`` when given.
    """
    if locking not in LOCKING_SHIFT:
        locking = DEFAULT_LANGUAGE
    if single not in SINGLE_SHIFT:
        single = DEFAULT_LANGUAGE
    plain, escaped = _decode_tables(locking, single)
    if ESCAPE not in septets:
        text = "".join([plain[s & 0x7F] for s in septets])
    else:
        out: list[str] = []
        escape_pending = False
        for raw in septets:
            septet = raw & 0x7F
            if escape_pending:
                out.append(escaped[septet])
                escape_pending = False
            elif septet == ESCAPE:
                escape_pending = True
            else:
                out.append(plain[septet])
        if escape_pending and notes is not None:
            notes.append("GSM 7 bit text ends with a lone escape septet (dropped)")
        text = "".join(out)
    if notes is not None and REPLACEMENT in text:
        notes.append("GSM 7 bit text uses septets the alphabet leaves undefined (shown as U+FFFD)")
    return text


@lru_cache(maxsize=64)
def _encode_map(locking: int, single: int) -> dict[str, bytes]:
    """Character → septets, preferring the locking table (one septet) over an escape pair."""
    mapping: dict[str, bytes] = {}
    for index, ch in enumerate(SINGLE_SHIFT[single]):
        if ch is not None and index != ESCAPE and ch not in mapping:
            mapping[ch] = bytes((ESCAPE, index))
    plain: dict[str, bytes] = {}
    for index, ch in enumerate(LOCKING_SHIFT[locking]):
        if ch is not None and index != ESCAPE and ch not in plain:
            plain[ch] = bytes((index,))
    mapping.update(plain)
    return mapping


def encode_gsm7(
    text: str, locking: int = DEFAULT_LANGUAGE, single: int = DEFAULT_LANGUAGE
) -> bytes:
    """Text → unpacked septets (an extension character takes two: escape and code).

    Raises ValueError naming the first character the tables cannot represent.
    """
    if locking not in LOCKING_SHIFT:
        raise ValueError(f"no locking shift table for national language {locking}")
    if single not in SINGLE_SHIFT:
        raise ValueError(f"no single shift table for national language {single}")
    mapping = _encode_map(locking, single)
    try:
        return b"".join([mapping[ch] for ch in text])
    except KeyError as exc:
        raise ValueError(f"character {exc.args[0]!r} is not in the GSM 7 bit tables") from None


def septet_lengths(
    text: str, locking: int = DEFAULT_LANGUAGE, single: int = DEFAULT_LANGUAGE
) -> list[int]:
    """Septets each character takes (1 or 2), so a splitter never cuts an escape pair."""
    mapping = _encode_map(locking, single)
    try:
        return [len(mapping[ch]) for ch in text]
    except KeyError as exc:
        raise ValueError(f"character {exc.args[0]!r} is not in the GSM 7 bit tables") from None


def is_gsm7(text: str, locking: int = DEFAULT_LANGUAGE, single: int = DEFAULT_LANGUAGE) -> bool:
    """Whether every character of ``text`` has a GSM 7 bit representation in these tables."""
    mapping = _encode_map(locking, single)
    return all(ch in mapping for ch in text)
