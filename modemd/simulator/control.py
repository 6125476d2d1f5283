"""A line-based control protocol for a running simulated modem (``modemd simulate``, tests).

:func:`handle_control_line` takes one line such as ``sms +4915112345678 ID=PUMP01;BAT=3.71``
and returns a one-line answer. Mistakes are answered ("error: ..."), never raised.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from modemd.errors import ModemdError
from modemd.simulator.modem import SimulatedModem, encoder_module
from modemd.simulator.pdu_text import parse_hex, summary
from modemd.simulator.quirks import QUIRK_NAMES, parse_quirk_value
from modemd.simulator.storage import STATUS_NAMES

HELP = (
    "commands: sms <sender> <text...> | pdu <hex> | store <hex> | burst <n> <sender> <text...> "
    "| quirk [<name> <value>] | vanish | reappear | list | garbage <hex> | urc <line> "
    "| retry | corrupt <listing line> | ring [<number>] | restart | help"
)


def _index_text(indices: list[int | None]) -> str:
    stored = [str(i) for i in indices if i is not None]
    direct = sum(1 for i in indices if i is None)
    parts = []
    if stored:
        parts.append("stored at " + ",".join(stored))
    if direct:
        parts.append(f"{direct} not stored (sent as +CMT, or rejected)")
    return "; ".join(parts) if parts else "nothing"


def _cmd_sms(sim: SimulatedModem, rest: str) -> str:
    words = rest.split(None, 1)
    if len(words) < 2:
        return "error: usage: sms <sender> <text...>"
    result = sim.deliver_sms(sender=words[0], text=words[1])
    return f"delivered {len(result)} part(s): {_index_text(result)}"


def _cmd_pdu(sim: SimulatedModem, rest: str) -> str:
    if not rest:
        return "error: usage: pdu <hex>"
    return f"delivered: {_index_text([sim.deliver(parse_hex(rest))])}"


def _cmd_store(sim: SimulatedModem, rest: str) -> str:
    if not rest:
        return "error: usage: store <hex>"
    return f"stored at {sim.store(parse_hex(rest))}"


def _cmd_burst(sim: SimulatedModem, rest: str) -> str:
    words = rest.split(None, 2)
    if len(words) < 3 or not words[0].isdigit():
        return "error: usage: burst <n> <sender> <text...>"
    count, sender, text = int(words[0]), words[1], words[2]
    if not 1 <= count <= 1000:
        return "error: burst wants 1..1000 messages"
    encode = encoder_module()
    now = datetime.now().astimezone()
    # "#n" keeps the messages distinct: the daemon de-duplicates identical TPDUs.
    pdus = [
        encode.encode_deliver(
            sender=sender, text=f"{text} #{n + 1}", scts=now, smsc=sim.profile.smsc
        )
        for n in range(count)
    ]
    result = sim.deliver_many(pdus)
    return f"burst of {count}: {_index_text(result)}"


def _cmd_quirk(sim: SimulatedModem, rest: str) -> str:
    words = rest.split(None, 1)
    if not words:
        return "quirks: " + ", ".join(f"{k}={v!r}" for k, v in sim.quirks.as_dict().items())
    if len(words) < 2:
        return f"error: usage: quirk <name> <value> (names: {', '.join(QUIRK_NAMES)})"
    name, value = words
    sim.set_quirk(name, parse_quirk_value(name, value))
    return f"quirk {name} = {getattr(sim.quirks, name)!r}"


def _cmd_vanish(sim: SimulatedModem, rest: str) -> str:
    sim.vanish()
    return "port vanished (as on USB unplug)"


def _cmd_reappear(sim: SimulatedModem, rest: str) -> str:
    port = sim.reappear()
    return f"port is back at {port} (pty {sim.slave_path})"


def _cmd_list(sim: SimulatedModem, rest: str) -> str:
    messages = sim.messages()
    if not messages:
        return "storage is empty"
    statuses = sim.statuses()
    items = []
    for index, pdu in messages.items():
        about = summary(pdu) or f"{len(pdu)} octets"
        items.append(f"[{index} {STATUS_NAMES[statuses[index]]}] {about}")
    return f"{len(messages)} message(s): " + " | ".join(items)


def _cmd_garbage(sim: SimulatedModem, rest: str) -> str:
    if not rest:
        return "error: usage: garbage <hex>"
    data = parse_hex(rest)
    sim.garbage(data)
    return f"wrote {len(data)} byte(s) of garbage"


def _cmd_urc(sim: SimulatedModem, rest: str) -> str:
    if not rest:
        return "error: usage: urc <line>"
    sim.write_urc(rest)
    return "urc written"


def _cmd_retry(sim: SimulatedModem, rest: str) -> str:
    result = sim.retry_rejected()
    return f"retried {len(result)}: {_index_text(result)}"


def _cmd_corrupt(sim: SimulatedModem, rest: str) -> str:
    """A listing entry that is not a PDU ("corrupt ZZ00" non-hex, "corrupt" an empty slot)."""
    return f"stored a corrupt entry at {sim.store_corrupt(rest.strip())}"


def _cmd_ring(sim: SimulatedModem, rest: str) -> str:
    sim.ring(rest.strip() or "+4915112345678")
    return "rang (a missed call)"


def _cmd_restart(sim: SimulatedModem, rest: str) -> str:
    sim.restart()
    return "restarting (settings lost; boot lines follow)"


def _cmd_help(sim: SimulatedModem, rest: str) -> str:
    return HELP


COMMANDS: dict[str, Callable[[SimulatedModem, str], str]] = {
    "sms": _cmd_sms,
    "pdu": _cmd_pdu,
    "store": _cmd_store,
    "burst": _cmd_burst,
    "quirk": _cmd_quirk,
    "vanish": _cmd_vanish,
    "reappear": _cmd_reappear,
    "list": _cmd_list,
    "garbage": _cmd_garbage,
    "urc": _cmd_urc,
    "retry": _cmd_retry,
    "corrupt": _cmd_corrupt,
    "ring": _cmd_ring,
    "restart": _cmd_restart,
    "help": _cmd_help,
}


def handle_control_line(sim: SimulatedModem, line: str) -> str:
    """Run one control command against ``sim``; the answer is one line of text."""
    words = line.strip().split(None, 1)
    if not words:
        return ""
    verb = words[0].lower()
    rest = words[1].strip() if len(words) > 1 else ""
    command = COMMANDS.get(verb)
    if command is None:
        return f"error: unknown command {verb!r}; {HELP}"
    try:
        return command(sim, rest)
    except (ModemdError, ValueError, TypeError, KeyError, OSError) as exc:
        return f"error: {exc}"
