"""Secrets out of command text: what a log line, an error or a state document may show.

``AT+CPIN="1234"`` is shown as ``AT+CPIN="****"``; the same for the other commands that carry
a PIN, PUK or password (+CPIN, +CLCK, +CPWD, and the vendors' ^CPIN / +QPINC / +SPIC
forms with a code). Every path that turns a command into text goes through :func:`redact`.
"""

from __future__ import annotations

import re
from typing import Final

__all__ = ["redact"]

# A command that carries a secret in its arguments: everything after "=" is masked except
# facility names in quotes that are not digits (AT+CLCK="SC",0,"1234": "SC" stays).
_SECRET_COMMANDS: Final = re.compile(r"(?i)(\+CPIN|\^CPIN|\+CLCK|\+CPWD|\+CPIN2|\$QCPWD)\s*=")
_FIELD: Final = re.compile(r'"[^"]*"?|[^,]+')


def redact(command: str) -> str:
    """``command`` with every PIN/PUK/password replaced by ``****``."""
    match = _SECRET_COMMANDS.search(command)
    if match is None:
        return command
    head, tail = command[: match.end()], command[match.end() :]
    return head + _FIELD.sub(_mask_field, tail)


def _mask_field(match: re.Match[str]) -> str:
    field = match.group()
    inner = field.strip().strip('"')
    if not any(c.isdigit() for c in inner) or (inner.isdigit() and len(inner) == 1):
        return field  # a facility ("SC") or a mode (0, 1, 2): no secret
    return '"****"' if field.strip().startswith('"') else "****"
