"""Huawei's own answer to "which port is which": ``AT^GETPORTMODE``.

A Huawei stick whose interfaces carry neither a usable class/protocol nor a name still tells
its layout when asked on its first (modem) port, interface 00, which always answers AT:

    ^GETPORTMODE: TYPE: WCDMA: huawei,MDM:0,PCUI:1,NDIS:2,CDROM:3,SD:4

Each ``name:number`` item is one USB function, in interface order; only the serial ones (PC UI,
modem, diagnostics, GPS, shells) are ttys, and they map onto the stick's ttys sorted by
interface number. The names and that mapping are ModemManager's (mm-modem-helpers-huawei.c,
mm-plugin-huawei.c); tests/data/huawei_getportmode.json holds its recorded answers.
"""

from __future__ import annotations

from collections.abc import Sequence

from modemd.errors import ModemdError
from modemd.modem.usb_ids import Role

_MODES: dict[str, str] = {
    "pcui": "pcui",
    "mdm": "modem", "modem": "modem", "3g_modem": "modem",
    "diag": "diag", "3g_diag": "diag", "4g_diag": "diag",
    "gps": "gps",
    "ndis": "net", "rndis": "net", "ncm": "net", "ecm": "net",
    "cdrom": "cdrom",
    "sd": "sd",
    "bt": "bt",
    "a_shell": "shell", "c_shell": "shell",
}

#: the functions that are a tty, and the role modemd gives each
_SERIAL_ROLES: dict[str, Role] = {
    "pcui": "at", "modem": "ppp", "diag": "diag", "gps": "gps", "shell": "unused"}


def parse_getportmode(line: str) -> list[str] | None:
    """The functions a ``^GETPORTMODE:`` line lists, in order ("pcui", "modem", "net", ...,
    "none" for a name not known); None when the line is not such an answer."""
    items = line.split(",")
    if not items[0].strip().upper().startswith("^GETPORTMODE:"):
        return None
    modes: list[str] = []
    for item in items[1:]:
        name, colon, number = item.partition(":")
        if not colon or not number.strip().isdigit():
            continue
        key = name.strip().lower()
        modes.append(_MODES.get(key, "sd" if key.startswith("mass") else "none"))
    return modes


def serial_roles(modes: Sequence[str]) -> list[Role]:
    """The roles of the stick's ttys, in interface order, from its listed functions."""
    return [_SERIAL_ROLES[m] for m in modes if m in _SERIAL_ROLES]


def read_port_roles(port: str, *, baudrate: int = 115200, timeout: float = 1.0,
                    ) -> list[Role] | None:
    """Ask a Huawei stick's modem port (interface 00) for its layout; None if it cannot say."""
    from modemd.modem.session import ATSession
    from modemd.transport import SerialTransport

    transport = SerialTransport(port, baudrate=baudrate)
    try:
        transport.open()
    except ModemdError:
        return None
    session = ATSession(transport, on_urc=lambda urc: None, name=f"portmode:{port}")
    try:
        answer = session.execute("AT^GETPORTMODE", timeout=timeout, check=False,
                                 response_prefixes=("^GETPORTMODE",))
    except ModemdError:
        return None
    finally:
        session.close()
    for line in answer.lines:
        modes = parse_getportmode(line.strip())
        if modes is not None:
            return serial_roles(modes) or None
    return None
