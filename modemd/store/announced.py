"""Which Home Assistant discovery topics modemd has announced, by owner, across restarts.

An owner is a (parser rule, device) pair or a modem. When an owner's set of topics shrinks (a
field dropped from a rule, a field that became a bool) or the owner is gone from the config,
the topics no owner announces any more get an empty retained payload, which is how Home
Assistant is told to remove an entity.
"""

from __future__ import annotations

from collections.abc import Iterable

from modemd.store.database import Database

__all__ = ["AnnouncedTopics"]


class AnnouncedTopics:
    def __init__(self, db: Database) -> None:
        self.db = db

    def load(self) -> dict[str, frozenset[str]]:
        """owner → the topics last announced for it."""
        owners: dict[str, set[str]] = {}
        for owner, topic in self.db.connection().execute(
            "SELECT owner, topic FROM announced_topics"
        ):
            owners.setdefault(owner, set()).add(topic)
        return {owner: frozenset(topics) for owner, topics in owners.items()}

    def replace(self, owner: str, topics: Iterable[str]) -> None:
        """Record *topics* as everything announced for *owner* (none: forget the owner)."""
        with self.db.transaction() as conn:
            conn.execute("DELETE FROM announced_topics WHERE owner = ?", (owner,))
            conn.executemany(
                "INSERT OR IGNORE INTO announced_topics(owner, topic) VALUES (?, ?)",
                [(owner, topic) for topic in topics],
            )
