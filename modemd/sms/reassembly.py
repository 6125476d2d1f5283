"""Joining the parts of a concatenated SMS (TS 23.040 9.2.3.24.1 / 9.2.3.24.8)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from modemd.errors import DecodeError
from modemd.sms.decode import user_data_payload
from modemd.sms.model import IEI_CONCAT_8BIT, IEI_CONCAT_16BIT, SmsDeliver


@dataclass(frozen=True, slots=True)
class Assembled:
    """A joined message. ``parts`` are the distinct parts in sequence order; ``missing`` the
    sequence numbers not (yet) seen, so ``complete`` is ``not missing``."""

    text: str | None
    data: bytes | None
    complete: bool
    missing: tuple[int, ...]
    total: int
    parts: tuple[SmsDeliver, ...]


def _raw_concat(part: SmsDeliver) -> tuple[int, int, int, int] | None:
    """(reference, total, sequence, ref_bits) of the part's last concatenation IE, read without
    the validity checks of ``Concat``, so bad counts can be reported as such."""
    if part.udh is None:
        return None
    found: tuple[int, int, int, int] | None = None
    for element in part.udh.elements:
        data = element.data
        if element.iei == IEI_CONCAT_8BIT and len(data) == 3:
            found = (data[0], data[1], data[2], 8)
        elif element.iei == IEI_CONCAT_16BIT and len(data) == 4:
            found = (int.from_bytes(data[0:2], "big"), data[2], data[3], 16)
    return found


def _utf16_octets(part: SmsDeliver) -> bytes:
    """The part's UCS-2 text as the sender's octets (a split surrogate half included).

    An odd trailing octet (a malformed part, decoded leniently) is dropped here as the part's
    own decode dropped it: UTF-16 code units are two octets, and one left over would shift
    every character of the parts after it.
    """
    try:
        octets = user_data_payload(part.tpdu)
    except DecodeError:
        return (part.text or "").encode("utf-16-be", "surrogatepass")
    return octets[: len(octets) - len(octets) % 2]


def _decode_utf16(octets: bytes) -> str:
    # even length by construction, and surrogatepass accepts any code unit: cannot raise
    text = octets[: len(octets) - len(octets) % 2].decode("utf-16-be", "surrogatepass")
    return "".join("\ufffd" if "\ud800" <= char <= "\udfff" else char for char in text)


def assemble(parts: Sequence[SmsDeliver]) -> Assembled:
    """Join the parts of one set, given in any order; raises DecodeError only.

    See :func:`_assemble`. Anything else going wrong inside (a bug meeting a part nobody
    foresaw) comes out as DecodeError too, so a caller's error path is one ``except``.
    """
    try:
        return _assemble(parts)
    except DecodeError:
        raise
    except (ValueError, TypeError, IndexError, KeyError, UnicodeError, OverflowError) as exc:
        raise DecodeError(f"cannot join the parts: {type(exc).__name__}: {exc}",
                          field="concat") from exc


def _assemble(parts: Sequence[SmsDeliver]) -> Assembled:
    """Join the parts of one set, given in any order.

    Duplicates (same sequence number) are ignored, the first one kept. A message without a
    concatenation IE stands alone (a set of one, repeats of it being duplicates). Raises
    DecodeError for parts of different sets, a total that differs between parts, or a
    sequence number of 0 or above the total.
    UCS-2 text is joined on its raw UTF-16 octets, so a surrogate pair split between parts
    survives; 8-bit data is concatenated.
    """
    if not parts:
        raise DecodeError("no parts to assemble", field="concat")
    headers = [_raw_concat(part) for part in parts]
    if all(header is None for header in headers):
        part = parts[0]
        if any(other.tpdu != part.tpdu for other in parts[1:]):
            raise DecodeError("messages without a concatenation header are no set", field="concat")
        return Assembled(part.text, part.data, True, (), 1, (part,))
    known = [header for header in headers if header is not None]
    if len(known) != len(headers):
        raise DecodeError("a part has no concatenation header", field="concat")
    reference, total, _, ref_bits = known[0]
    by_sequence: dict[int, SmsDeliver] = {}
    for part, (part_reference, part_total, sequence, part_bits) in zip(parts, known, strict=True):
        if (part_reference, part_bits) != (reference, ref_bits):
            raise DecodeError(
                f"parts of different sets: reference {part_reference} ({part_bits}-bit) "
                f"and {reference} ({ref_bits}-bit)",
                field="concat",
            )
        if part_total != total:
            raise DecodeError(
                f"parts disagree on the total: {part_total} and {total}", field="concat"
            )
        if total == 0 or sequence == 0 or sequence > total:
            raise DecodeError(f"sequence {sequence} is outside 1..{total}", field="concat")
        by_sequence.setdefault(sequence, part)

    ordered = tuple(by_sequence[sequence] for sequence in sorted(by_sequence))
    missing = tuple(sequence for sequence in range(1, total + 1) if sequence not in by_sequence)
    text_pieces: list[str] = []
    utf16_run = bytearray()
    data = bytearray()
    has_text = has_data = False
    previous = 0
    for sequence in sorted(by_sequence):
        part = by_sequence[sequence]
        if utf16_run and sequence != previous + 1:
            # A gap: halves of a pair on either side of it are not each other's.
            text_pieces.append(_decode_utf16(bytes(utf16_run)))
            utf16_run.clear()
        previous = sequence
        if part.encoding == "ucs2" and part.text is not None:
            utf16_run += _utf16_octets(part)
            has_text = True
            continue
        if utf16_run:
            text_pieces.append(_decode_utf16(bytes(utf16_run)))
            utf16_run.clear()
        if part.text is not None:
            text_pieces.append(part.text)
            has_text = True
        if part.data is not None:
            data += part.data
            has_data = True
    if utf16_run:
        text_pieces.append(_decode_utf16(bytes(utf16_run)))
    return Assembled(
        text="".join(text_pieces) if has_text else None,
        data=bytes(data) if has_data else None,
        complete=not missing,
        missing=missing,
        total=total,
        parts=ordered,
    )
