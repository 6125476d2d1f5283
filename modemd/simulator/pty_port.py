"""The pseudo-terminal a simulated modem sits behind, and its /dev/serial/by-id style link.

The simulator keeps its own descriptor of the slave open, so the master never sees a hangup
while no host has the port open, and bytes written before a host opens it wait in the tty
buffer (as on a real USB modem's port). Closing the master (:meth:`PtyPort.close`) is what a
USB unplug looks like to the host: its next read or write on the slave fails.
"""

from __future__ import annotations

import contextlib
import os
import tty
from pathlib import Path


class PtyPort:
    """One open pty pair: ``master_fd`` for the simulator, ``slave_path`` for the host."""

    def __init__(self, master_fd: int, slave_fd: int, slave_path: str) -> None:
        self.master_fd: int | None = master_fd
        self.slave_fd: int | None = slave_fd
        self.slave_path = slave_path

    @classmethod
    def open(cls, *, avoid_path: str | None = None) -> PtyPort:
        """A new raw pty; with ``avoid_path``, never one whose slave has that path.

        The kernel hands out the lowest free pts number, so the number of a pty that was just
        closed comes straight back; holding the first pair open while opening a second one
        forces a different number.
        """
        held: list[PtyPort] = []
        try:
            for _ in range(4):
                port = cls._open_one()
                if avoid_path is None or port.slave_path != avoid_path:
                    return port
                held.append(port)
            raise OSError(f"could not get a pty other than {avoid_path}")
        finally:
            for port in held:
                port.close()

    @classmethod
    def _open_one(cls) -> PtyPort:
        master_fd, slave_fd = os.openpty()
        try:
            tty.setraw(slave_fd)
            os.set_blocking(master_fd, False)
            return cls(master_fd, slave_fd, os.ttyname(slave_fd))
        except BaseException:
            os.close(master_fd)
            os.close(slave_fd)
            raise

    @property
    def is_open(self) -> bool:
        return self.master_fd is not None

    def close(self) -> None:
        """Close both ends (idempotent); the slave path disappears."""
        for attr in ("master_fd", "slave_fd"):
            fd = getattr(self, attr)
            setattr(self, attr, None)
            if fd is not None:
                with contextlib.suppress(OSError):
                    os.close(fd)


class PortLink:
    """A symlink that always points at the current slave, like /dev/serial/by-id/...."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._target: str | None = None

    def point_at(self, target: str) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        os.symlink(target, tmp)
        os.replace(tmp, self.path)  # atomic: a host never sees the link missing
        self._target = target

    def remove(self) -> None:
        """Remove the link if it is still ours (points where we left it)."""
        target, self._target = self._target, None
        if target is None:
            return
        with contextlib.suppress(OSError):
            if self.path.is_symlink() and os.readlink(self.path) == target:
                self.path.unlink()
