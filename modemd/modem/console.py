"""`modemd at PORT [COMMAND]`: a safe AT console for field work.

* The port is opened exclusively (pyserial ``exclusive=True``, a ``flock``), like the daemon
  opens it: while modemd runs, the console refuses instead of stealing answers from it.
* One-shot mode sends one command line and prints the answer and the final result code
  (exit 0 on OK, 1 on an error result or no answer).
* Interactive mode reads command lines until end of input or ``exit``; unsolicited result codes
  (``+CMTI``, ``+CREG`` ...) are printed whenever they arrive.
* Commands that lose messages, switch the radio off, reset or reconfigure the modem, or risk
  the SIM (wrong PINs) are refused with the reason, unless ``force`` is given (one-shot) or
  the user types ``yes`` at the confirmation (interactive).

Exit codes: 0 OK, 1 the modem answered with an error or not at all, 2 the port cannot be
opened (in use, missing, no permission), 3 a command was refused as destructive.
"""

from __future__ import annotations

import errno
import re
import sys
import threading
from collections.abc import Iterator
from typing import Final, TextIO

from modemd.at.events import FinalResult, Garbage, Urc
from modemd.errors import CommandFailed, CommandTimeout, TransportError
from modemd.modem.probe import ALL_URC_PREFIXES
from modemd.modem.session import ATSession, Response
from modemd.transport import SerialTransport

EXIT_OK: Final = 0
EXIT_FAILED: Final = 1
EXIT_NO_PORT: Final = 2
EXIT_REFUSED: Final = 3

IN_USE_MESSAGE: Final = (
    "the port is in use (is modemd running? `systemctl stop modemd` first; "
    "ModemManager or a terminal program may also hold it)"
)

_LOSES_MESSAGES = ("deletes SMS from the modem: a message modemd has not journalled yet is "
                   "lost for good (modemd itself deletes only after its journal commit)")
_RESETS = "resets or powers off the modem: it drops off USB and comes back on another ttyUSB"
_SIM_RISK = ("enters or changes a SIM PIN/PUK: each wrong PIN uses one of 3 attempts, then the "
             "SIM needs its PUK; 10 wrong PUKs destroy the SIM")
_RAW_SIM = "raw SIM access: can overwrite files on the SIM card"
_PERSISTENT = ("changes the modem's stored configuration (USB port layout, baud rate, saved "
               "profile): ports may disappear or stop answering")

#: extended command name -> why a set/execute of it is refused (queries and tests pass)
_DESTRUCTIVE_EXTENDED: Final[dict[str, str]] = {
    "+CMGD": _LOSES_MESSAGES,
    "+CMGDA": _LOSES_MESSAGES,  # SIMCom: delete all
    "+QMGDA": _LOSES_MESSAGES,  # Quectel: delete all
    "+CPIN": _SIM_RISK,
    "+CLCK": _SIM_RISK,
    "+CPWD": _SIM_RISK,
    "+CRSM": _RAW_SIM,
    "+CSIM": _RAW_SIM,
    "+CGLA": _RAW_SIM,
    "^RESET": _RESETS,
    "+CRESET": _RESETS,
    "#REBOOT": _RESETS,
    "#SHDN": _RESETS,
    "+QPOWD": _RESETS,
    "+CPOWD": _RESETS,
    "+CPOF": _RESETS,
    "+UFACTORY": "restores the u-blox factory configuration",
    "^SETPORT": _PERSISTENT,
    "^U2DIAG": _PERSISTENT,
    "+QCFG": _PERSISTENT,
    "+IPR": _PERSISTENT,
    "+CSAS": _PERSISTENT,
    "+CSCA": "changes the SMS service-centre number stored on the SIM",
    "+CMGS": "sends an SMS (costs money and reaches a real phone); not supported here",
    "+CMSS": "sends a stored SMS (costs money and reaches a real phone)",
    "+CMGW": "writes an SMS into storage after a '> ' prompt; not supported by this console",
}

_EXTENDED_NAME = re.compile(r"([+^#$%*][A-Z0-9]+)")


def _split_line(body: str) -> Iterator[str]:
    """The ';'-separated commands of one command line (quotes respected)."""
    part: list[str] = []
    quoted = False
    for char in body:
        if char == '"':
            quoted = not quoted
        if char == ";" and not quoted:
            yield "".join(part).strip()
            part = []
        else:
            part.append(char)
    yield "".join(part).strip()


def _cfun_reason(args: str) -> str | None:
    values = [v.strip() for v in args.split(",")]
    try:
        fun = int(values[0]) if values[0] else None
        reset = int(values[1]) if len(values) > 1 and values[1] else 0
    except ValueError:
        return None  # the modem will refuse it anyway
    if reset == 1 or (fun is not None and fun >= 15):
        return _RESETS
    if fun is not None and fun != 1:
        return (f"{fun} switches the radio off: no SMS arrive until AT+CFUN=1 "
                "(and some modems forget the PIN)")
    return None


def destructive_reason(command: str) -> str | None:
    """Why ``command`` (one command line) is refused without confirmation, or None."""
    text = command.strip().upper()
    if not text.startswith("AT"):
        return None
    for part in _split_line(text[2:]):
        if not part:
            continue
        match = _EXTENDED_NAME.match(part)
        if match is None:
            # basic commands, possibly several in a row: E0V1&F, Z, &W
            if "&F" in part:
                return "AT&F restores the factory settings of the modem"
            if "&W" in part:
                return _PERSISTENT
            continue
        name = match.group(1)
        rest = part[match.end():].lstrip()
        if rest.startswith(("?", "=?")):
            continue  # a query or a test command only reads
        args = rest[1:] if rest.startswith("=") else ""
        reason = _cfun_reason(args) if name == "+CFUN" else _DESTRUCTIVE_EXTENDED.get(name)
        if reason is not None:
            return f"{name}: {reason}"
    return None


def response_prefixes(command: str) -> tuple[str, ...]:
    """The information-line prefixes a command line's answers start with (+CREG for
    AT+CREG?), so that they are shown as its answer, not as unsolicited codes."""
    text = command.strip().upper()
    body = text[2:] if text.startswith("AT") else text
    names = []
    for part in _split_line(body):
        match = _EXTENDED_NAME.match(part)
        if match is not None:
            names.append(match.group(1))
    return tuple(dict.fromkeys(names))


def normalise(command: str) -> str:
    """``csq`` / ``+CSQ`` -> ``AT+CSQ``; ``ati`` stays ``ati``."""
    text = command.strip()
    if text[:2].upper() == "AT":
        return text
    return "AT" + text


class _Printer:
    """Thread-safe writes to the console's output (the reader thread prints URCs)."""

    def __init__(self, out: TextIO) -> None:
        self.out = out
        self.lock = threading.Lock()
        self.show_unsolicited = False

    def line(self, text: str) -> None:
        with self.lock:
            self.out.write(text + "\n")
            self.out.flush()

    def urc(self, urc: Urc) -> None:
        if not self.show_unsolicited:
            return
        head = f"{urc.name}: {urc.args}" if urc.args else urc.name
        self.line(f"[unsolicited] {head}")
        if urc.body is not None:
            self.line(f"[unsolicited] {urc.body}")

    def garbage(self, event: Garbage) -> None:
        if not self.show_unsolicited:
            return
        text = event.data.decode("latin-1").strip()
        if text:
            self.line(f"[unsolicited] {text!r}")


def _final_text(final: FinalResult) -> str:
    if final.text:
        return final.text
    return final.kind.value + (f": {final.code}" if final.code is not None else "")


def _send(session: ATSession, command: str, timeout: float, printer: _Printer) -> int:
    try:
        response: Response = session.execute(command, timeout=timeout,
                                             response_prefixes=response_prefixes(command),
                                             check=False)
    except CommandTimeout:
        printer.line(f"no answer within {timeout:g} s")
        return EXIT_FAILED
    except CommandFailed as exc:  # not raised with check=False; kept for safety
        printer.line(str(exc))
        return EXIT_FAILED
    for line in response.lines:
        printer.line(line)
    printer.line(_final_text(response.final))
    return EXIT_OK if response.final.ok else EXIT_FAILED


def _open(port: str, baudrate: int, printer: _Printer) -> SerialTransport | None:
    transport = SerialTransport(port, baudrate=baudrate, exclusive=True)
    try:
        transport.open()
    except TransportError as exc:
        cause = exc.__cause__
        err = getattr(cause, "errno", None)
        text = f"{cause or exc}".lower()
        if err in (errno.EBUSY, errno.EAGAIN, errno.EWOULDBLOCK) or "lock" in text \
                or "busy" in text:
            printer.line(f"{port}: {IN_USE_MESSAGE}")
        else:
            printer.line(str(exc))
        return None
    return transport


def run_console(
    port: str,
    command: str | None,
    *,
    baudrate: int = 115200,
    timeout: float = 10.0,
    force: bool = False,
    stdin: TextIO | None = None,
    stdout: TextIO | None = None,
) -> int:
    """Run the console; returns the exit code (see the module docstring)."""
    printer = _Printer(stdout if stdout is not None else sys.stdout)
    source = stdin if stdin is not None else sys.stdin
    if command is not None:
        command = normalise(command)
        reason = destructive_reason(command)
        if reason is not None and not force:
            printer.line(f"refused {command!r}: {reason}")
            printer.line("add --force to send it anyway")
            return EXIT_REFUSED
    transport = _open(port, baudrate, printer)
    if transport is None:
        return EXIT_NO_PORT
    session = ATSession(transport, on_urc=printer.urc, on_garbage=printer.garbage,
                        urc_prefixes=ALL_URC_PREFIXES, name=f"console:{port}")
    session.start()
    try:
        if command is not None:
            return _send(session, command, timeout, printer)
        return _interactive(session, port, source, printer, timeout=timeout, force=force)
    except TransportError as exc:
        printer.line(f"the port went away: {exc}")
        return EXIT_FAILED
    finally:
        session.close()


def _interactive(session: ATSession, port: str, source: TextIO, printer: _Printer, *,
                 timeout: float, force: bool) -> int:
    printer.show_unsolicited = True
    interactive = source.isatty()
    printer.line(f"connected to {port}; type AT commands, 'exit' or Ctrl-D to leave")
    result = EXIT_OK
    while True:
        if interactive:
            with printer.lock:
                printer.out.write("AT> ")
                printer.out.flush()
        line = source.readline()
        if not line:
            break
        text = line.strip()
        if not text:
            continue
        if text.lower() in ("exit", "quit"):
            break
        command = normalise(text)
        reason = destructive_reason(command)
        if reason is not None and not force:
            printer.line(f"careful: {reason}")
            printer.line("type 'yes' to send it anyway, anything else to skip it")
            if interactive:
                with printer.lock:
                    printer.out.write("send? ")
                    printer.out.flush()
            if source.readline().strip().lower() != "yes":
                printer.line("not sent")
                result = EXIT_REFUSED
                continue
        if session.dead.is_set():
            printer.line("the port went away")
            return EXIT_FAILED
        result = _send(session, command, timeout, printer)
    return result


__all__ = [
    "EXIT_FAILED",
    "EXIT_NO_PORT",
    "EXIT_OK",
    "EXIT_REFUSED",
    "IN_USE_MESSAGE",
    "destructive_reason",
    "normalise",
    "response_prefixes",
    "run_console",
]
