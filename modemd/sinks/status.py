"""A sink's connection state, kept in a small file of the state directory for the CLI.

The daemon's sinks write ``<state_dir>/sink-<name>.json`` when their connection state changes
(connected, refused, auth_failed, unreachable, tls_error, no_answer ...); ``modemd outbox``
shows it next to the queue, so "nothing arrives" comes with its reason.
"""

from __future__ import annotations

import contextlib
import json
import os
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

__all__ = ["ConnectionStatus", "read_status", "write_status"]


@dataclass(frozen=True, slots=True)
class ConnectionStatus:
    state: str  # connecting, connected, refused, auth_failed, unreachable, tls_error, no_answer
    reason: str
    since: str  # ISO 8601, UTC

    @classmethod
    def now(cls, state: str, reason: str) -> ConnectionStatus:
        return cls(state, reason, datetime.now(UTC).isoformat(timespec="seconds"))


def _path(state_dir: Path, sink: str) -> Path:
    return state_dir / f"sink-{sink}.json"


def write_status(state_dir: Path, sink: str, status: ConnectionStatus) -> None:
    """Replace the file atomically; a state dir that cannot be written is no reason to fail."""
    path = _path(state_dir, sink)
    temporary = path.with_name(path.name + ".tmp")
    with contextlib.suppress(OSError):
        temporary.write_text(json.dumps(asdict(status)), encoding="utf-8")
        os.replace(temporary, path)


def read_status(state_dir: Path, sink: str) -> dict[str, Any] | None:
    try:
        doc = json.loads(_path(state_dir, sink).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return doc if isinstance(doc, dict) else None
