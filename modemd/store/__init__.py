"""Journal, outbox and announced discovery topics in one SQLite file."""

from __future__ import annotations

from pathlib import Path

from modemd.store.announced import AnnouncedTopics
from modemd.store.database import Database
from modemd.store.journal import CommitResult, Journal, JournalRecord, raw_id_for, set_id_for
from modemd.store.outbox import Outbox, OutboxRow, SinkStats
from modemd.store.sendq import SendQueue

STORE_FILENAME = "modemd.sqlite3"


class Store:
    """The journal and the outbox over one database."""

    def __init__(self, state_dir: Path, *, readonly: bool = False) -> None:
        self.path = state_dir / STORE_FILENAME
        self.db = Database(self.path, readonly=readonly)
        self.journal = Journal(self.db)
        self.outbox = Outbox(self.db)
        self.announced = AnnouncedTopics(self.db)
        self.sendq = SendQueue(self.db)

    def close(self) -> None:
        self.db.close()


__all__ = [
    "AnnouncedTopics",
    "CommitResult",
    "Journal",
    "JournalRecord",
    "Outbox",
    "OutboxRow",
    "SendQueue",
    "SinkStats",
    "Store",
    "raw_id_for",
    "set_id_for",
]
