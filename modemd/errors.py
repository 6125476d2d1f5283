"""One exception root for the whole package, with structured subclasses.

Callers catch :class:`ModemdError` to handle anything modemd raises on purpose; anything
else escaping is a bug.
"""

from __future__ import annotations


class ModemdError(Exception):
    """Root of every error modemd raises deliberately."""


class ConfigError(ModemdError):
    """The configuration is invalid. ``problems`` lists ``(key_path, message)`` pairs."""

    def __init__(self, problems: list[tuple[str, str]], *, source: str = "") -> None:
        self.problems = problems
        self.source = source
        where = f"{source}: " if source else ""
        lines = [f"{where}{path}: {message}" for path, message in problems]
        super().__init__("\n".join(lines) if lines else "invalid configuration")


class TransportError(ModemdError):
    """The serial port could not be opened, or failed (e.g. the USB device vanished)."""

    def __init__(self, message: str, *, port: str) -> None:
        self.port = port
        super().__init__(f"{port}: {message}")


class ATError(ModemdError):
    """An AT command ended in failure."""


class CommandTimeout(ATError):
    """No final result code arrived for a command within its timeout."""

    def __init__(self, command: str, timeout: float) -> None:
        self.command = command
        self.timeout = timeout
        super().__init__(f"{command!r}: no final result within {timeout:.1f}s")


class PromptTimeout(CommandTimeout):
    """No "> " prompt came for AT+CMGS/CMGW within the timeout: the data was not written."""


class CommandFailed(ATError):
    """A command ended with ERROR, +CME ERROR or +CMS ERROR."""

    def __init__(self, command: str, result: str, code: int | None = None) -> None:
        self.command = command
        self.result = result
        self.code = code
        detail = f" {code}" if code is not None else ""
        super().__init__(f"{command!r} failed: {result}{detail}")


class ResponseParseError(ATError):
    """An information line (or a group of them) could not be read. ``line`` is the culprit."""

    def __init__(self, message: str, *, line: str) -> None:
        self.line = line
        super().__init__(f"{message}: {line!r}")


class DecodeError(ModemdError):
    """An SMS PDU or text-mode record could not be decoded.

    ``field`` names the part of the PDU that is wrong (e.g. ``"TP-OA"``, ``"TP-UDL"``) and
    ``offset`` the octet offset where decoding stopped, when known.
    """

    def __init__(self, message: str, *, field: str = "", offset: int | None = None) -> None:
        self.field = field
        self.offset = offset
        where = f"{field}: " if field else ""
        at = f" (at octet {offset})" if offset is not None else ""
        super().__init__(f"{where}{message}{at}")


class PayloadError(ModemdError):
    """A device payload matched no rule, or failed its rule's parsing or value checks."""

    def __init__(self, message: str, *, rule: str | None = None, field: str | None = None) -> None:
        self.rule = rule
        self.field = field
        super().__init__(message)


class StoreError(ModemdError):
    """The local journal/outbox store failed (disk full, corrupt file, ...)."""


class SinkError(ModemdError):
    """A sink (MQTT, time-series) rejected or could not take a delivery."""
