"""SIM / ME message storage of the simulated modem: fixed capacity, lowest free index first."""

from __future__ import annotations

from dataclasses import dataclass

REC_UNREAD = 0
REC_READ = 1
STO_UNSENT = 2
STO_SENT = 3
ALL = 4

STATUS_NAMES: dict[int, str] = {
    REC_UNREAD: "REC UNREAD",
    REC_READ: "REC READ",
    STO_UNSENT: "STO UNSENT",
    STO_SENT: "STO SENT",
    ALL: "ALL",
}
STATUS_BY_NAME: dict[str, int] = {name: code for code, name in STATUS_NAMES.items()}


@dataclass(slots=True)
class StoredMessage:
    pdu: bytes  # the full PDU, SMSC field included
    status: int = REC_UNREAD
    listing: str | None = None  # a corrupt entry: this line is listed instead of the PDU
    length: int | None = None  # ... with this <length> (default: the PDU's)


class Storage:
    """One memory ("SM", "ME", ...): ``capacity`` slots numbered from ``first_index``."""

    def __init__(self, name: str, capacity: int, first_index: int) -> None:
        if capacity < 0:
            raise ValueError("capacity must not be negative")
        self.name = name
        self.capacity = capacity
        self.first_index = first_index
        self.slots: dict[int, StoredMessage] = {}

    @property
    def used(self) -> int:
        return len(self.slots)

    @property
    def full(self) -> bool:
        return self.used >= self.capacity

    def valid_index(self, index: int) -> bool:
        return self.first_index <= index < self.first_index + self.capacity

    def store(self, pdu: bytes, status: int = REC_UNREAD) -> int | None:
        """The index the message went to, or None when every slot is taken."""
        for index in range(self.first_index, self.first_index + self.capacity):
            if index not in self.slots:
                self.slots[index] = StoredMessage(pdu, status)
                return index
        return None

    def get(self, index: int) -> StoredMessage | None:
        return self.slots.get(index)

    def delete(self, index: int) -> None:
        self.slots.pop(index, None)

    def delete_flagged(self, flag: int) -> None:
        """AT+CMGD=<i>,<delflag> with delflag 1-4 (27.005 3.5.4)."""
        doomed = {
            1: {REC_READ},
            2: {REC_READ, STO_SENT},
            3: {REC_READ, STO_SENT, STO_UNSENT},
            4: {REC_UNREAD, REC_READ, STO_SENT, STO_UNSENT},
        }[flag]
        for index in [i for i, m in self.slots.items() if m.status in doomed]:
            del self.slots[index]

    def listing(self, status: int) -> list[tuple[int, StoredMessage]]:
        return [
            (index, message)
            for index, message in sorted(self.slots.items())
            if status in (ALL, message.status)
        ]
