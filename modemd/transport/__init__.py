"""Transport: bytes in and out of a modem port."""

from modemd.transport.base import LoopbackTransport, Transport
from modemd.transport.serial_port import SerialTransport

__all__ = ["LoopbackTransport", "SerialTransport", "Transport"]
