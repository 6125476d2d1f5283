"""How messages are read off the modem, as a strategy: PDU mode or text mode.

The driver asks its :class:`ReadMode` for the listing command, the declared answer of a
listing or a read, and the journal record of one entry; it never branches on the mode. An
entry that cannot be read becomes an ``invalid`` record (the pipeline dead-letters it with
what the modem said), so one bad entry never stops the rest of a listing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from modemd.at import responses as at
from modemd.at.answers import Answer, entries
from modemd.at.events import Urc
from modemd.errors import ResponseParseError
from modemd.store.journal import RecordMode

__all__ = ["PDU_MODE", "TEXT_MODE", "EntryRecord", "ReadMode", "text_record"]


@dataclass(frozen=True, slots=True)
class EntryRecord:
    """What to journal for one listing entry, and where it sits on the modem."""

    mode: RecordMode
    raw: bytes
    index: int | None
    problem: str | None = None  # why it is an invalid record
    ours: bool = True  # False: a stored outgoing message, not ours to take


class ReadMode(Protocol):
    name: str
    list_command: str

    def listing_answer(self) -> Answer: ...
    def read_answer(self) -> Answer: ...
    def record(self, entry: at.ListingEntry) -> EntryRecord: ...
    def direct_record(self, urc: Urc) -> tuple[RecordMode, bytes]: ...


def _invalid(entry: at.ListingEntry, exc: ResponseParseError) -> EntryRecord:
    return EntryRecord("invalid", entry.raw(), entry.index(), problem=str(exc))


class _PduMode:
    name = "pdu"
    list_command = "AT+CMGL=4"

    def listing_answer(self) -> Answer:
        return entries("+CMGL", "pdu")

    def read_answer(self) -> Answer:
        return entries("+CMGR", "pdu")

    def record(self, entry: at.ListingEntry) -> EntryRecord:
        try:
            listed = at.parse_entry_pdu(entry)
        except ResponseParseError as exc:
            return _invalid(entry, exc)
        ours = listed.status in (None, 0, 1)  # 2/3: stored outgoing messages
        return EntryRecord("pdu", bytes.fromhex(listed.pdu_hex), listed.index, ours=ours)

    def direct_record(self, urc: Urc) -> tuple[RecordMode, bytes]:
        text = (urc.body or "").strip()
        try:
            if len(text) % 2:
                raise ValueError("odd length")
            return "pdu", bytes.fromhex(text)
        except ValueError:
            # Keep what the modem said: the pipeline dead-letters it with the reason.
            return "invalid", text.encode("latin-1", "replace")


class _TextMode:
    name = "text"
    list_command = 'AT+CMGL="ALL"'

    def listing_answer(self) -> Answer:
        return entries("+CMGL", "text")

    def read_answer(self) -> Answer:
        return entries("+CMGR", "text")

    def record(self, entry: at.ListingEntry) -> EntryRecord:
        try:
            listed = at.parse_entry_text(entry)
        except ResponseParseError as exc:
            return _invalid(entry, exc)
        ours = not listed.header_args[0].upper().startswith("STO")
        raw = text_record(_header_text(listed.header_args), listed.body)
        return EntryRecord("text", raw, entry.index(), ours=ours)

    def direct_record(self, urc: Urc) -> tuple[RecordMode, bytes]:
        return "text", text_record(urc.args, urc.body)


PDU_MODE: ReadMode = _PduMode()
TEXT_MODE: ReadMode = _TextMode()


def _header_text(fields: tuple[str, ...]) -> str:
    """A text-mode header as the modem wrote it, from its unquoted fields."""
    return ",".join(f if f.isdigit() or not f else f'"{f}"' for f in fields)


def text_record(header_args: str, body: str | None) -> bytes:
    """A text-mode record as journalled: the header, a newline, the body (UTF-8)."""
    return (header_args + "\n" + (body or "")).encode("utf-8", "replace")
