"""What the daemon knows about a modem, published retained on its state topic."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any


class Phase(StrEnum):
    """Where a modem's worker is (bellows' NcpState): each phase runs its table of steps."""

    STOPPED = "stopped"
    CONNECTING = "connecting"  # opening the port
    INITIALISING = "initialising"  # the init steps (sync, SIM, identity, mode, storage, CNMI)
    SERVING = "serving"  # receiving: URCs, sweeps, health polls
    RECOVERING = "recovering"  # climbing the recovery ladder after a timeout
    OFFLINE = "offline"  # waiting to reconnect (backoff)


@dataclass(frozen=True, slots=True)
class ModemIdentity:
    manufacturer: str = ""
    model: str = ""
    revision: str = ""
    imei: str | None = None
    imsi: str | None = None
    iccid: str | None = None
    iccid_problem: str | None = None  # the modem said something that is not an ICCID


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
    sim: str | None = None  # "READY", "SIM PIN2", ... as AT+CPIN? said; None: not read
    delivery: str | None = None  # "direct" (+CMT, acknowledged) or "store" (+CMTI), as set
    phase: Phase = Phase.STOPPED
    last_error: str | None = None
    received: int = 0
    recoveries: dict[str, int] = field(default_factory=dict)
    unsolicited: dict[str, int] = field(default_factory=dict)  # events by meaning, "unknown"
    invalid_entries: int = 0  # listing entries journalled as invalid (dead letters)

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
            "iccid_problem": ident["iccid_problem"],
            "sim": self.sim,
            "delivery": self.delivery,
            "phase": self.phase.value,
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
            "unsolicited": dict(self.unsolicited),
            "invalid_entries": self.invalid_entries,
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
