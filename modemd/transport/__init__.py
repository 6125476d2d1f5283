"""Transport: bytes in and out of a modem port."""

from modemd.transport.serial_port import SerialTransport

__all__ = ["SerialTransport"]
