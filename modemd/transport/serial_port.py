"""Bytes in and out of a modem's AT port, through pyserial.

The same code opens ``/dev/ttyUSB2``, ``/dev/serial/by-id/...``, a pseudo-terminal of the
simulated modem or any pyserial URL (``rfc2217://``, ``socket://``). It never decodes text:
the AT parser gets the bytes exactly as they came.
"""

from __future__ import annotations

import errno
import fcntl
import logging
import os
import termios
import threading

import serial

from modemd.errors import TransportError
from modemd.transport.port_users import MODEMMANAGER, busy_advice, users_of

log = logging.getLogger(__name__)


def _explain_open_error(port: str, exc: Exception) -> str:
    """Turn pyserial's open error into advice a field engineer can act on."""
    err = getattr(exc, "errno", None)
    text = str(exc)
    if err == errno.ENOENT or "No such file" in text:
        return "no such device: is the modem plugged in and in serial (not HiLink) mode?"
    if err == errno.EACCES or "Permission denied" in text:
        return "permission denied: add the service user to the 'dialout' group"
    if err in (errno.EBUSY, errno.EAGAIN) or "busy" in text.lower() or "lock" in text.lower():
        return busy_advice(port)
    return text


def _hold_exclusively(ser: serial.Serial, port: str) -> None:
    """TIOCEXCL: from now on the kernel refuses every other open of this tty with EBUSY
    (except root's), ModemManager's included. pyserial's ``exclusive=True`` is only an
    advisory flock, which programs that do not flock ignore."""
    try:
        fcntl.ioctl(ser.fileno(), termios.TIOCEXCL)
    except (OSError, AttributeError, ValueError) as exc:  # not a tty (a test double, a URL)
        log.debug("%s: TIOCEXCL not set: %s", port, exc)


class SerialTransport:
    """An exclusive, byte-oriented connection to one serial port."""

    def __init__(
        self,
        port: str,
        *,
        baudrate: int = 115200,
        rtscts: bool = False,
        read_timeout: float | None = 0.1,
        exclusive: bool = True,
    ) -> None:
        self.port = port
        self.baudrate = baudrate
        self.rtscts = rtscts
        self.read_timeout = read_timeout
        self.exclusive = exclusive
        self._serial: serial.Serial | None = None
        self._write_lock = threading.Lock()

    @property
    def is_open(self) -> bool:
        return self._serial is not None and bool(self._serial.is_open)

    def open(self) -> None:
        """Open the port; TransportError explains why not (missing, permission, busy)."""
        path = os.path.realpath(self.port) if self.port.startswith("/") else self.port
        try:
            ser = serial.serial_for_url(
                path,
                baudrate=self.baudrate,
                rtscts=self.rtscts,
                timeout=self.read_timeout,
                write_timeout=5.0,
                exclusive=self.exclusive if path.startswith("/") else None,
                do_not_open=True,
            )
            ser.open()
        except (serial.SerialException, OSError, ValueError) as exc:
            raise TransportError(_explain_open_error(self.port, exc), port=self.port) from exc
        if self.exclusive and path.startswith("/"):
            _hold_exclusively(ser, self.port)
            # Root is not stopped by another program's TIOCEXCL (ModemManager's): look who
            # else has it open rather than talk over ModemManager.
            others = users_of(path)
            if any(u.name == MODEMMANAGER for u in others):
                ser.close()
                busy = OSError(errno.EBUSY, "held by ModemManager")
                raise TransportError(busy_advice(self.port), port=self.port) from busy
            if others and not path.startswith("/dev/pts/"):  # a pty's creator holds it too
                log.warning("%s is also open in %s", self.port,
                            ", ".join(f"{u.name} (pid {u.pid})" for u in others))
        self._serial = ser
        log.debug("opened %s (%s) at %d baud", self.port, path, self.baudrate)

    @property
    def interruptible(self) -> bool:
        """Whether :meth:`interrupt` ends a waiting read (a device does; pyserial URLs not)."""
        return hasattr(self._serial, "cancel_read")

    def read(self, timeout: float | None = None) -> bytes:
        """What arrived, waiting at most ``timeout`` s (None: ``read_timeout``, where None
        means until bytes arrive or :meth:`interrupt`); b"" if nothing did.

        Raises TransportError when the device is gone (USB unplug, pty closed).
        """
        ser = self._require()
        wanted = self.read_timeout if timeout is None else timeout
        if ser.timeout != wanted:
            # pyserial's timeout setter reprograms the tty (tcsetattr) on every change, and
            # a driven session reads with a new deadline each time: its read looks at
            # nothing but _timeout, so set that alone.
            ser.__dict__["_timeout"] = wanted
        try:
            data: bytes = ser.read(1)
            if data:
                waiting = ser.in_waiting
                if waiting:
                    data += ser.read(waiting)
            return data
        except (serial.SerialException, OSError, termios.error, TypeError, AttributeError) as exc:
            # TypeError/AttributeError: pyserial's read after a concurrent close().
            raise TransportError(f"read failed: {exc}", port=self.port) from exc

    def write(self, data: bytes) -> None:
        ser = self._require()
        try:
            with self._write_lock:
                # No flush(): its tcdrain waits until the bytes have left the UART (on a USB
                # modem, until the write URB completes) before the answer can even be waited
                # for; the kernel sends them in order either way.
                ser.write(data)
        except (serial.SerialException, OSError, termios.error) as exc:
            raise TransportError(f"write failed: {exc}", port=self.port) from exc

    def interrupt(self) -> None:
        """Make a read waiting in another thread return b"" now."""
        ser = self._serial
        if ser is not None:
            try:
                ser.cancel_read()
            except (serial.SerialException, OSError, AttributeError, ValueError) as exc:
                log.debug("%s: cancel_read: %s", self.port, exc)

    def close(self) -> None:
        ser, self._serial = self._serial, None
        if ser is not None:
            try:
                if self.exclusive and ser.is_open and self.port.startswith("/"):
                    # A pty keeps the flag after the last close (its master lives on).
                    fcntl.ioctl(ser.fileno(), termios.TIOCNXCL)
            except (OSError, AttributeError, ValueError, serial.SerialException) as exc:
                log.debug("%s: TIOCNXCL: %s", self.port, exc)
            try:
                ser.close()
            except (serial.SerialException, OSError, termios.error) as exc:
                log.debug("closing %s: %s", self.port, exc)

    def _require(self) -> serial.Serial:
        if self._serial is None:
            raise TransportError("port is not open", port=self.port)
        return self._serial
