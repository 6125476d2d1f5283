"""`modemd at PORT [COMMAND]`: a safe AT console for field work.

* The port is opened exclusively (pyserial ``exclusive=True``, a ``flock``), like the daemon
  opens it: while modemd runs, the console refuses instead of stealing answers from it.
* One-shot mode sends one command line and prints the answer and the final result code
  (exit 0 on OK, 1 on an error result or no answer).
* Interactive mode reads command lines until end of input or ``exit``; unsolicited result codes
  (``+CMTI``, ``+CREG`` ...) are printed whenever they arrive.
* Commands that lose messages, switch the radio off, reset or reconfigure the modem, or risk
  the SIM (wrong PINs) are refused with the reason, unless ``force`` is given, in one-shot and
  interactive mode alike. A command is read the way a modem reads it (lines end at CR and
  LF, ``ATE0+CMGD=1,4`` is two commands), so no part can hide behind a harmless one.

Exit codes: 0 OK, 1 the modem answered with an error or not at all, 2 the port cannot be
opened (in use, missing, no permission), 3 a command was refused as destructive.
"""

from __future__ import annotations

import errno
import re
import sys
import threading
from typing import Final, TextIO

from modemd.at.events import FinalResult, Garbage, Urc
from modemd.cli_support import terminal_safe
from modemd.errors import CommandFailed, CommandTimeout, TransportError
from modemd.modem.profiles import ALL_LINE_PREFIX_URCS, ALL_URC_PREFIXES
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
    "+CPMS": ("changes the message storage: the modem then reads and stores SMS elsewhere "
              "than modemd set it to"),
    "+CRES": "restores SMS settings from the SIM, replacing what modemd set",
    "+QPRTPARA": "restores or saves the Quectel configuration (factory reset)",
    "+QRST": _RESETS,
    "^SMSO": _RESETS,
    "#ENHRST": _RESETS,
}

_EXTENDED_NAME = re.compile(r"[+^#$%*!][A-Z0-9!%\-./:_]+")
_EXTENDED_PREFIXES = "+^#$%*!"
_LINE_BREAKS = re.compile(r"[\r\n]+")

#: basic commands (V.250 section 6.2) that are refused, by name
_DESTRUCTIVE_BASIC: Final[dict[str, str]] = {
    "&F": "restores the factory settings of the modem",
    "Z": "resets the modem to its stored profile",
    "&W": _PERSISTENT,
    "D": "dials a call (costs money and reaches a real phone)",
}


def command_lines(command: str) -> list[str]:
    """The command lines a modem sees in ``command``: it ends a line at every CR or LF."""
    return [line.strip() for line in _LINE_BREAKS.split(command) if line.strip()]


def _extended_end(body: str, start: int) -> int:
    """Where the extended command starting at ``start`` ends: at an unquoted ';', or where
    another command seems to begin without one (``+CSQ+CMGD=1``: V.250 wants the ';', but
    a lenient modem may not, so the guard reads it as two)."""
    quoted = False
    for index in range(start + 1, len(body)):
        char = body[index]
        if char == '"':
            quoted = not quoted
        elif quoted:
            continue
        elif char == ";" or (char in _EXTENDED_PREFIXES + "&"
                             and body[index + 1:index + 2].isalpha()):
            return index
    return len(body)


def _digits_end(body: str, start: int) -> int:
    while start < len(body) and body[start].isdigit():
        start += 1
    return start


def split_commands(line: str) -> list[str]:
    """The commands of one command line as a modem reads them (V.250 section 5.2).

    Basic commands (``E0``, ``&F``, ``Z``, ``S7=60``, ``D...``) may follow one another and
    may be followed by an extended one with no separator (``ATE0+CMGD=1,4``); an extended
    command runs to the next unquoted ';'. ``line`` is one line, with or without its ``AT``.
    """
    text = line.strip().upper()
    body = text[2:] if text.startswith("AT") else text
    parts: list[str] = []
    index = 0
    while index < len(body):
        char = body[index]
        if char in " ;":
            index += 1
            continue
        if char in _EXTENDED_PREFIXES:
            end = _extended_end(body, index)
        elif char == "D":  # the dial string runs to the end of the line
            end = len(body)
        elif char in "&\\" and index + 1 < len(body):
            end = _digits_end(body, index + 2)
        elif char == "S":  # S-register: S7=60, S0?
            end = _digits_end(body, index + 1)
            if body[end:end + 1] == "?":
                end += 1
            elif body[end:end + 1] == "=":
                end = _digits_end(body, end + 1)
        else:
            end = _digits_end(body, index + 1)
        parts.append(body[index:end].strip())
        index = end
    return parts


def _cfun_reason(args: str) -> str | None:
    values = [v.strip() for v in args.split(",")]
    try:
        fun = int(values[0]) if values[0] else None
        reset = int(values[1]) if len(values) > 1 and values[1] else 0
    except ValueError:
        return "sets the radio's functionality"  # unreadable values: still refused
    if reset == 1 or (fun is not None and fun >= 15):
        return _RESETS
    if fun is not None and fun != 1:
        return (f"{fun} switches the radio off: no SMS arrive until AT+CFUN=1 "
                "(and some modems forget the PIN)")
    return ("sets the radio's functionality: the modem may detach and register again, "
            "missing SMS meanwhile (some modems restart)")


def _cnmi_reason(args: str) -> str | None:
    values = [v.strip() for v in args.split(",")]
    if len(values) > 1 and values[1] in ("2", "3"):
        return ("routes new SMS straight to this terminal instead of storing them: "
                "messages arriving while the console runs are not stored anywhere")
    return None


def _part_reason(part: str) -> str | None:
    match = _EXTENDED_NAME.match(part)
    if match is None:
        name = part[:2] if part.startswith(("&", "\\")) else part[:1]
        reason = _DESTRUCTIVE_BASIC.get(name)
        return f"AT{name}: {reason}" if reason else None
    name = match.group(0)
    rest = part[match.end():].lstrip()
    if rest.startswith(("?", "=?")):
        return None  # a query or a test command only reads
    args = rest[1:] if rest.startswith("=") else ""
    if name == "+CFUN":
        reason = _cfun_reason(args)
    elif name == "+CNMI":
        reason = _cnmi_reason(args)
    else:
        reason = _DESTRUCTIVE_EXTENDED.get(name)
    return f"{name}: {reason}" if reason is not None else None


def destructive_reason(command: str) -> str | None:
    """Why ``command`` is refused without ``--force``, or None.

    ``command`` is read as a modem reads it: split into lines at CR and LF, each line into
    its basic and extended commands; one destructive part refuses the whole of it. Other
    control characters are refused too: a modem edits its command line on a backspace, so
    ``AT+CMGX\bD=1`` is ``AT+CMGD=1`` to it.
    """
    if any((ord(c) < 32 and c not in "\r\n") or c == "\x7f" for c in command):
        return "contains control characters (a modem edits its command line on backspace)"
    for line in command_lines(command):
        upper = line.upper()
        if not upper.startswith("AT"):
            # a modem skips to the next "AT"; read it the same way
            at = upper.find("AT")
            if at < 0:
                continue
            upper = upper[at:]
        for part in split_commands(upper):
            reason = _part_reason(part)
            if reason is not None:
                return reason
    return None


def response_prefixes(command: str) -> tuple[str, ...]:
    """The information-line prefixes a command line's answers start with (+CREG for
    AT+CREG?), so that they are shown as its answer, not as unsolicited codes."""
    names = []
    for line in command_lines(command):
        for part in split_commands(line):
            match = _EXTENDED_NAME.match(part)
            if match is not None:
                names.append(match.group(0))
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
        # what the modem prints can be SMS text (AT+CMGR in text mode): no control characters
        with self.lock:
            self.out.write(terminal_safe(text) + "\n")
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
    lines: list[str] = []
    if command is not None:
        lines = [normalise(line) for line in command_lines(command)]
        reason = destructive_reason(command)
        if reason is not None and not force:
            printer.line(f"refused {command!r}: {reason}")
            printer.line("add --force to send it anyway")
            return EXIT_REFUSED
        if not lines:
            printer.line("no command given (leave COMMAND out for an interactive session)")
            return EXIT_NO_PORT  # 2: a usage error, as for a bad option
    transport = _open(port, baudrate, printer)
    if transport is None:
        return EXIT_NO_PORT
    session = ATSession(transport, on_urc=printer.urc, on_garbage=printer.garbage,
                        urc_prefixes=ALL_URC_PREFIXES, line_prefix_urcs=ALL_LINE_PREFIX_URCS,
                        name=f"console:{port}")
    session.start()
    try:
        if command is not None:
            result = EXIT_OK
            for line in lines:  # a modem ends a command line at each CR/LF: one at a time
                result = _send(session, line, timeout, printer)
                if result != EXIT_OK:
                    break
            return result
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
    refused = False
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
            printer.line(f"refused {command!r}: {reason}")
            printer.line("not sent; start the console with --force to send such commands")
            refused = True
            continue
        if session.dead.is_set():
            printer.line("the port went away")
            return EXIT_FAILED
        for part in command_lines(command):
            result = _send(session, normalise(part), timeout, printer)
    # a refusal is remembered: a script piping commands in learns that one was not sent
    return EXIT_REFUSED if refused and result == EXIT_OK else result


__all__ = [
    "EXIT_FAILED",
    "EXIT_NO_PORT",
    "EXIT_OK",
    "EXIT_REFUSED",
    "IN_USE_MESSAGE",
    "command_lines",
    "destructive_reason",
    "normalise",
    "response_prefixes",
    "run_console",
    "split_commands",
]
