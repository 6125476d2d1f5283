"""What the daemon knows about a modem, published retained on its state topic."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any


@dataclass(frozen=True, slots=True)
class ModemIdentity:
    manufacturer: str = ""
    model: str = ""
    revision: str = ""
    imei: str | None = None
    imsi: str | None = None
    iccid: str | None = None


@dataclass
class ModemState:
    """Mutable, owned by the modem's worker thread; snapshots go out as plain dicts."""

    name: str
    port: str
    online: bool = False
    identity: ModemIdentity = field(default_factory=ModemIdentity)
    profile: str = "generic"
    mode: str = "pdu"
    storage: str | None = None
    storage_used: int | None = None
    storage_total: int | None = None
    operator: str | None = None
    registration: str | None = None
    rssi_dbm: int | None = None
    ber: int | None = None
    lte_quality: str | None = None
    last_error: str | None = None
    received: int = 0
    recoveries: dict[str, int] = field(default_factory=dict)

    def count(self, step: str) -> None:
        self.recoveries[step] = self.recoveries.get(step, 0) + 1

    def document(self) -> dict[str, Any]:
        """The ``modemd/<gw>/modem/<modem>/state`` payload of design.md.

        An offline modem claims no registration, operator or signal: those are what the
        last poll saw, not what is true now (an unplugged modem is not "registered, -73 dBm").
        """
        ident = asdict(self.identity)
        live = self.online
        return {
            "modem": self.name,
            "online": self.online,
            "port": self.port,
            "imei": ident["imei"],
            "imsi": ident["imsi"],
            "iccid": ident["iccid"],
            "manufacturer": ident["manufacturer"],
            "model": ident["model"],
            "revision": ident["revision"],
            "profile": self.profile,
            "mode": self.mode,
            "operator": self.operator if live else None,
            "registration": self.registration if live else None,
            "signal": {"rssi": self.rssi_dbm if live else None, "ber": self.ber if live else None,
                       "lte": self.lte_quality if live else None},
            "storage": {"name": self.storage, "used": self.storage_used,
                        "total": self.storage_total},
            "received": self.received,
            "recoveries": dict(self.recoveries),
            "last_error": self.last_error,
            "updated_at": datetime.now(UTC).isoformat(timespec="seconds"),
        }

    def health(self) -> dict[str, Any]:
        """The body of a ``modem`` time-series point."""
        return {
            "modem": self.name,
            "imei": self.identity.imei,
            "rssi_dbm": self.rssi_dbm,
            "ber": self.ber,
            "registration": self.registration,
            "operator": self.operator,
            "storage_used": self.storage_used,
            "storage_total": self.storage_total,
            "updated_at": datetime.now(UTC).isoformat(timespec="seconds"),
        }
