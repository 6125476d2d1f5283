"""SMPP framing, sans-IO: bytes in, whole PDUs out (each is its 4-octet length first).

The PDUs themselves are smpplib's to build and parse; this only cuts the byte stream, as
pymodbus's framers do: feed any chunking, get every complete PDU, keep the rest.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from modemd.errors import ModemdError

HEADER = struct.Struct(">LLLL")
#: SMPP 3.4 gives no maximum; deliver_sm with a 64 KiB message_payload is the largest sane one
MAX_PDU = 70_000


class FramingError(ModemdError):
    """The byte stream is not SMPP (a length out of range): the connection cannot recover."""


@dataclass(frozen=True, slots=True)
class Frame:
    command_id: int
    status: int
    sequence: int
    raw: bytes


class Framer:
    def __init__(self) -> None:
        self._buffer = bytearray()

    def feed(self, data: bytes) -> list[Frame]:
        """The PDUs completed by *data*; FramingError if a length field is impossible."""
        self._buffer += data
        frames: list[Frame] = []
        buffer = self._buffer
        start = 0
        while len(buffer) - start >= HEADER.size:
            length, command_id, status, sequence = HEADER.unpack_from(buffer, start)
            if length < HEADER.size or length > MAX_PDU:
                raise FramingError(f"SMPP PDU length {length} is outside 16..{MAX_PDU}")
            if len(buffer) - start < length:
                break
            frames.append(Frame(command_id, status, sequence, bytes(buffer[start:start + length])))
            start += length
        if start:
            del buffer[:start]
        return frames

    @property
    def buffered(self) -> int:
        return len(self._buffer)
