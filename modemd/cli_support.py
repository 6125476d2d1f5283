"""What the command line needs besides its verbs: exit codes, argument checks, safe output
and the last-resort handler that keeps Python tracebacks away from users.

Exit codes of every verb (docs/contracts.md): 0 done, 1 a runtime failure (the modem, the
store, the network or a decode failed), 2 a usage or configuration error (the command line
or the config file must change; systemd does not restart on it), 3 ``modemd at`` refused a
destructive command.
"""

from __future__ import annotations

import logging
import os
import re
import sqlite3
import sys
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Final, NoReturn

from modemd.errors import ConfigError, ModemdError

EXIT_OK: Final = 0
EXIT_FAILURE: Final = 1
EXIT_USAGE: Final = 2

STANDARD_BAUD_RATES: Final = (9600, 19200, 38400, 57600, 115200, 230400, 460800, 921600)

log = logging.getLogger("modemd.cli")


def fail(message: str, code: int = EXIT_USAGE) -> NoReturn:
    """Print ``message`` on stderr and leave with ``code``."""
    import typer

    typer.echo(message, err=True)
    raise typer.Exit(code)


def describe_os_error(exc: OSError) -> str:
    """``/x/y: No such file or directory`` rather than ``[Errno 2] ...``."""
    where = exc.filename if exc.filename is not None else ""
    what = exc.strerror or str(exc)
    return f"{where}: {what}" if where else what


# --- argument checks (typer callbacks: a bad value is a usage error, exit 2) ----------------


def check_baudrate(value: int) -> int:
    if value not in STANDARD_BAUD_RATES:
        rates = ", ".join(str(r) for r in STANDARD_BAUD_RATES)
        import typer

        raise typer.BadParameter(f"{value} is not a standard baud rate ({rates})")
    return value


def positive_seconds(value: float) -> float:
    if not 0 < value <= 86400:  # NaN fails too
        import typer

        raise typer.BadParameter(f"{value:g} must be more than 0 and at most 86400 seconds")
    return value


def check_tcp_port(value: int) -> int:
    if not 1 <= value <= 65535:
        import typer

        raise typer.BadParameter(f"{value} is not a TCP port (1-65535)")
    return value


def parse_hex(text: str, *, what: str) -> bytes:
    """Hex digits (spaces allowed) as bytes; a usage error names what is wrong."""
    compact = "".join(text.split())
    if len(compact) % 2:
        fail(f"{what}: odd number of hex digits ({len(compact)}); each byte is two digits")
    bad = re.search(r"[^0-9A-Fa-f]", compact)
    if bad is not None:
        fail(f"{what}: {bad.group(0)!r} at position {bad.start()} is not a hex digit")
    return bytes.fromhex(compact)


def read_text_file(path: Path, *, what: str) -> str:
    """A small text file the user named; a usage error if it cannot be read."""
    try:
        return path.read_text(encoding="utf-8")
    except OSError as exc:
        fail(f"cannot read {what} {describe_os_error(exc)}")
    except UnicodeDecodeError:
        fail(f"{what} {path} is not UTF-8 text")


def check_new_file_parent(path: Path, *, what: str) -> None:
    """A file to be created needs an existing directory (it is not created for the user)."""
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.is_dir():
        fail(f"{what} {path}: the directory {parent} does not exist (create it first)")


# --- text from SMS on a terminal -----------------------------------------------------------

_BIDI: Final = frozenset("\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e"
                         "\u2066\u2067\u2068\u2069")


def _escape_char(char: str) -> str:
    code = ord(char)
    if code < 0x20 or 0x7F <= code <= 0x9F or char in _BIDI:
        if char == "\n":
            return "\\n"
        if char == "\r":
            return "\\r"
        if char == "\t":
            return "\\t"
        return f"\\x{code:02x}" if code <= 0xFF else f"\\u{code:04x}"
    return char


def terminal_safe(text: str) -> str:
    """``text`` with C0/C1 controls, DEL (so ESC sequences) and bidi overrides escaped.

    SMS text is written by whoever sent it: an ESC sequence could retitle the terminal, hide
    lines or fake output, a right-to-left override could reorder what a person reads.
    """
    if text.isprintable() and not _BIDI.intersection(text):
        return text
    return "".join(_escape_char(c) for c in text)


def terminal_safe_lines(text: str) -> str:
    """:func:`terminal_safe` for each line of a multi-line report (its newlines kept)."""
    return "\n".join(terminal_safe(line) for line in text.split("\n"))


# --- the last resort --------------------------------------------------------------------------


def debug_requested(argv: list[str]) -> bool:
    return "--debug" in argv or os.environ.get("MODEMD_DEBUG", "") not in ("", "0")


def run_guarded(app: Callable[[], object], argv: list[str] | None = None) -> NoReturn:
    """Run the CLI; an exception nobody handled becomes one clear line, never a traceback.

    The details go to the log at debug level, and to stderr with ``--debug`` (or
    ``MODEMD_DEBUG=1``).
    """
    args = sys.argv[1:] if argv is None else argv
    try:
        app()
    except SystemExit:
        raise
    except BrokenPipeError:
        # `modemd messages | head`: the reader left; say nothing more on that pipe
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        sys.exit(EXIT_FAILURE)
    except KeyboardInterrupt:
        _say("interrupted")
        sys.exit(130)
    except Exception as exc:  # the last resort, on purpose
        code, message = _classify(exc)
        log.debug("unhandled exception", exc_info=exc)
        if debug_requested(args):
            traceback.print_exception(exc, file=sys.stderr)
        _say(f"modemd: {message}")
        if not debug_requested(args):
            _say("(run with `modemd --debug ...` for the details)")
        sys.exit(code)
    sys.exit(0)


def _say(message: str) -> None:
    """As typer.echo(err=True) (typer is not loaded for `modemd run`)."""
    sys.stderr.write(f"{message}\n")
    sys.stderr.flush()


def _classify(exc: BaseException) -> tuple[int, str]:
    if isinstance(exc, ConfigError):
        return EXIT_USAGE, str(exc)
    if isinstance(exc, ModemdError):
        return EXIT_FAILURE, str(exc)
    if isinstance(exc, PermissionError):
        return EXIT_FAILURE, f"permission denied: {describe_os_error(exc)}"
    if isinstance(exc, OSError):
        return EXIT_FAILURE, describe_os_error(exc)
    if isinstance(exc, sqlite3.Error):
        return EXIT_FAILURE, f"the store failed: {exc}"
    first = str(exc).splitlines()[0] if str(exc) else ""
    return EXIT_FAILURE, f"unexpected error ({type(exc).__name__}){': ' + first if first else ''}"


__all__ = [
    "EXIT_FAILURE",
    "EXIT_OK",
    "EXIT_USAGE",
    "STANDARD_BAUD_RATES",
    "check_baudrate",
    "check_new_file_parent",
    "check_tcp_port",
    "describe_os_error",
    "fail",
    "parse_hex",
    "positive_seconds",
    "read_text_file",
    "run_guarded",
    "terminal_safe",
    "terminal_safe_lines",
]


_JSON_UNSAFE = re.compile("[\u007f-\u009f" + "".join(sorted(_BIDI)) + "]")


def json_terminal_safe(text: str) -> str:
    """JSON text with the characters a terminal acts on written as ``\\uXXXX`` escapes.

    ``json.dumps`` already escapes C0 controls; C1 controls (a one-byte CSI is U+009B), DEL
    and bidi overrides it leaves as they are. The escapes keep the JSON valid and equal.
    """
    return _JSON_UNSAFE.sub(lambda m: f"\\u{ord(m.group(0)):04x}", text)
