"""A pty-backed AT modem that modemd's real serial code opens like hardware.

>>> with SimulatedModem(profile="quectel_ec25") as sim:      # doctest: +SKIP
...     sim.deliver_sms(sender="+4915112345678", text="ID=PUMP01;BAT=3.71")
...     serial.Serial(sim.port)                              # a host, as with /dev/ttyUSB2

See ``modem.py`` for the engine and its delivery / fault API, ``profiles.py`` for the modem
families, ``quirks.py`` for the switchable misbehaviours and ``control.py`` for the line-based
control protocol of ``modemd simulate``.
"""

from modemd.simulator.control import handle_control_line
from modemd.simulator.modem import SimulatedModem, SimulatorError, StorageFullError
from modemd.simulator.profiles import PROFILES, IccidCommand, SimProfile, sim_profile
from modemd.simulator.quirks import QUIRK_NAMES, Quirks

__all__ = [
    "PROFILES",
    "QUIRK_NAMES",
    "IccidCommand",
    "Quirks",
    "SimProfile",
    "SimulatedModem",
    "SimulatorError",
    "StorageFullError",
    "handle_control_line",
    "sim_profile",
]
