"""Home Assistant's sensor tables, as data: which units and state classes a device class takes.

Home Assistant's MQTT integration refuses a discovery config whose unit does not belong to its
device class (it creates no entity and logs an error nobody sees on the gateway), and a state
class its device class cannot have is "impossible" to it (a warning, no long-term statistics).
``modemd config check`` reports both as errors, with the valid choices.

Copied as data from Home Assistant core, ``homeassistant/components/sensor/const.py``
(``DEVICE_CLASS_UNITS``, ``DEVICE_CLASS_STATE_CLASSES``, ``STATE_CLASS_UNITS``), the unit enums
of ``homeassistant/const.py`` and ``BinarySensorDeviceClass`` of
``homeassistant/components/binary_sensor/__init__.py``, as of :data:`HA_VERSION`. Newer Home
Assistant releases add units and classes: extend the tables, never loosen a check by hand.
"""

from __future__ import annotations

from typing import Final

__all__ = [
    "BINARY_SENSOR_DEVICE_CLASSES",
    "DEVICE_CLASS_STATE_CLASSES",
    "DEVICE_CLASS_UNITS",
    "HA_VERSION",
    "NON_NUMERIC_DEVICE_CLASSES",
    "STATE_CLASS_UNITS",
    "device_class_problems",
]

HA_VERSION: Final = "2025.4"

_APPARENT_POWER = frozenset({"VA"})
_AREA = frozenset({"m²", "cm²", "km²", "mm²", "in²", "ft²", "yd²", "mi²", "ac", "ha"})
_PRESSURE = frozenset({"Pa", "hPa", "kPa", "bar", "cbar", "mbar", "mmHg", "inHg", "psi"})
_BLOOD_GLUCOSE = frozenset({"mg/dL", "mmol/L"})
_CONDUCTIVITY = frozenset({"S/cm", "µS/cm", "mS/cm"})
_CURRENT = frozenset({"mA", "A"})
_DATA_RATE = frozenset({"bit/s", "kbit/s", "Mbit/s", "Gbit/s", "B/s", "kB/s", "MB/s", "GB/s",
                        "KiB/s", "MiB/s", "GiB/s"})
_INFORMATION = frozenset({"bit", "kbit", "Mbit", "Gbit", "B", "kB", "MB", "GB", "TB", "PB",
                          "EB", "ZB", "YB", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB", "ZiB",
                          "YiB"})
_LENGTH = frozenset({"mm", "cm", "m", "km", "in", "ft", "yd", "mi", "nmi"})
_DURATION = frozenset({"d", "h", "min", "s", "ms", "μs"})  # μ: U+03BC, as Home Assistant has it
_ENERGY = frozenset({"J", "kJ", "MJ", "GJ", "mWh", "Wh", "kWh", "MWh", "GWh", "TWh", "cal",
                     "kcal", "Mcal", "Gcal"})
_ENERGY_DISTANCE = frozenset({"kWh/100km", "mi/kWh", "km/kWh"})
_FREQUENCY = frozenset({"Hz", "kHz", "MHz", "GHz"})
_VOLUME = frozenset({"ft³", "CCF", "m³", "L", "mL", "gal", "fl. oz."})
_IRRADIANCE = frozenset({"W/m²", "BTU/(h⋅ft²)"})
_POWER = frozenset({"mW", "W", "kW", "MW", "GW", "TW"})
_PRECIPITATION = frozenset({"in", "mm", "cm"})
_VOLUMETRIC_FLUX = frozenset({"in/d", "in/h", "mm/d", "mm/h"})
_REACTIVE_POWER = frozenset({"var", "kvar"})
_SOUND_PRESSURE = frozenset({"dB", "dBA"})
_SPEED = frozenset({"Beaufort", "ft/s", "in/s", "m/s", "km/h", "kn", "mph", "mm/s"})
_TEMPERATURE = frozenset({"°C", "°F", "K"})
_VOLTAGE = frozenset({"µV", "mV", "V", "kV", "MV"})
# What Home Assistant 2025.4.4 takes, as seen running it (scripts/interop-ha): it refuses
# L/h ("not valid together with device class volume_flow_rate"); L/h, L/s and m³/s are
# later additions.
_VOLUME_FLOW_RATE = frozenset({"m³/h", "ft³/min", "L/min", "gal/min", "mL/s"})
_MASS = frozenset({"g", "kg", "mg", "µg", "oz", "lb", "st"})
_UG_M3 = frozenset({"µg/m³"})
_PPM = frozenset({"ppm"})
_PERCENT = frozenset({"%"})
_NO_UNIT: frozenset[str | None] = frozenset({None})

#: sensor device class → the units Home Assistant accepts (None: no unit). Device classes not
#: listed take any unit (monetary: a currency) or none (date, enum, timestamp).
DEVICE_CLASS_UNITS: Final[dict[str, frozenset[str | None]]] = {
    "apparent_power": _APPARENT_POWER,
    "aqi": _NO_UNIT,
    "area": _AREA,
    "atmospheric_pressure": _PRESSURE,
    "battery": _PERCENT,
    "blood_glucose_concentration": _BLOOD_GLUCOSE,
    "carbon_monoxide": _PPM,
    "carbon_dioxide": _PPM,
    "conductivity": _CONDUCTIVITY,
    "current": _CURRENT,
    "data_rate": _DATA_RATE,
    "data_size": _INFORMATION,
    "distance": _LENGTH,
    "duration": _DURATION,
    "energy": _ENERGY,
    "energy_distance": _ENERGY_DISTANCE,
    "energy_storage": _ENERGY,
    "frequency": _FREQUENCY,
    "gas": frozenset({"CCF", "ft³", "m³", "L"}),
    "humidity": _PERCENT,
    "illuminance": frozenset({"lx"}),
    "irradiance": _IRRADIANCE,
    "moisture": _PERCENT,
    "nitrogen_dioxide": _UG_M3,
    "nitrogen_monoxide": _UG_M3,
    "nitrous_oxide": _UG_M3,
    "ozone": _UG_M3,
    "ph": _NO_UNIT,
    "pm1": _UG_M3,
    "pm10": _UG_M3,
    "pm25": _UG_M3,
    "power_factor": frozenset({"%", None}),
    "power": _POWER,
    "precipitation": _PRECIPITATION,
    "precipitation_intensity": _VOLUMETRIC_FLUX,
    "pressure": _PRESSURE,
    "reactive_power": _REACTIVE_POWER,
    "signal_strength": frozenset({"dB", "dBm"}),
    "sound_pressure": _SOUND_PRESSURE,
    "speed": _SPEED | _VOLUMETRIC_FLUX,
    "sulphur_dioxide": _UG_M3,
    "temperature": _TEMPERATURE,
    "volatile_organic_compounds": _UG_M3,
    "volatile_organic_compounds_parts": frozenset({"ppb", "ppm"}),
    "voltage": _VOLTAGE,
    "volume": _VOLUME,
    "volume_flow_rate": _VOLUME_FLOW_RATE,
    "volume_storage": _VOLUME,
    "water": frozenset({"CCF", "ft³", "m³", "gal", "L"}),
    "weight": _MASS,
    "wind_direction": frozenset({"°"}),
    "wind_speed": _SPEED,
}

_ALL_STATE_CLASSES = frozenset({"measurement", "measurement_angle", "total", "total_increasing"})
_MEASUREMENT = frozenset({"measurement"})
_TOTALS = frozenset({"total", "total_increasing"})

#: sensor device class → the state classes it may have (empty: none at all)
DEVICE_CLASS_STATE_CLASSES: Final[dict[str, frozenset[str]]] = {
    **{name: _MEASUREMENT for name in (
        "apparent_power", "aqi", "atmospheric_pressure", "battery",
        "blood_glucose_concentration", "carbon_monoxide", "carbon_dioxide", "conductivity",
        "current", "data_rate", "energy_distance", "energy_storage", "frequency", "humidity",
        "illuminance", "irradiance", "moisture", "nitrogen_dioxide", "nitrogen_monoxide",
        "nitrous_oxide", "ozone", "ph", "pm1", "pm10", "pm25", "power_factor", "power",
        "precipitation_intensity", "pressure", "reactive_power", "signal_strength",
        "sound_pressure", "speed", "sulphur_dioxide", "temperature",
        "volatile_organic_compounds", "volatile_organic_compounds_parts", "voltage",
        "volume_storage", "volume_flow_rate", "wind_speed")},
    **{name: _ALL_STATE_CLASSES for name in (
        "area", "data_size", "distance", "duration", "precipitation")},
    **{name: _TOTALS for name in ("energy", "gas", "volume", "water")},
    "monetary": frozenset({"total"}),
    "weight": frozenset({"measurement", "total", "total_increasing"}),
    "wind_direction": frozenset({"measurement_angle"}),
    "date": frozenset(),
    "enum": frozenset(),
    "timestamp": frozenset(),
}

#: state class → the only units it may have
STATE_CLASS_UNITS: Final[dict[str, frozenset[str | None]]] = {"measurement_angle": frozenset({"°"})}

NON_NUMERIC_DEVICE_CLASSES: Final = frozenset({"date", "enum", "timestamp"})

#: every sensor device class Home Assistant knows
SENSOR_DEVICE_CLASSES: Final = frozenset(DEVICE_CLASS_STATE_CLASSES)

BINARY_SENSOR_DEVICE_CLASSES: Final = frozenset({
    "battery", "battery_charging", "carbon_monoxide", "cold", "connectivity", "door",
    "garage_door", "gas", "heat", "light", "lock", "moisture", "motion", "moving", "occupancy",
    "opening", "plug", "power", "presence", "problem", "running", "safety", "smoke", "sound",
    "tamper", "update", "vibration", "window",
})


def _choices(values: frozenset[str | None] | frozenset[str]) -> str:
    shown = sorted("no unit" if v is None else repr(v) for v in values)
    return ", ".join(shown) if shown else "none"


def device_class_problems(
    *, binary: bool, device_class: str | None, unit: str | None, state_class: str | None,
) -> list[tuple[str, str]]:
    """``(key, problem)`` for each combination Home Assistant refuses, with the valid choices.

    ``binary``: a binary sensor (bool fields, flags); otherwise a sensor. ``state_class`` is
    the effective one (None when there is none).
    """
    problems: list[tuple[str, str]] = []
    if binary:
        if device_class is not None and device_class not in BINARY_SENSOR_DEVICE_CLASSES:
            problems.append(("device_class", f"{device_class!r} is no Home Assistant binary "
                             f"sensor device class (HA {HA_VERSION}): one of "
                             f"{', '.join(sorted(BINARY_SENSOR_DEVICE_CLASSES))}"))
        return problems
    if device_class is not None and device_class not in SENSOR_DEVICE_CLASSES:
        problems.append(("device_class", f"{device_class!r} is no Home Assistant sensor device "
                         f"class (HA {HA_VERSION}): one of "
                         f"{', '.join(sorted(SENSOR_DEVICE_CLASSES))}"))
        return problems
    if device_class in NON_NUMERIC_DEVICE_CLASSES and unit is not None:
        problems.append(("unit", f"device class {device_class!r} takes no unit"))
    units = DEVICE_CLASS_UNITS.get(device_class or "")
    if units is not None and unit is not None and unit not in units:
        problems.append(("unit", f"unit {unit!r} is not valid with device class "
                         f"{device_class!r} in Home Assistant {HA_VERSION} (it creates no "
                         "entity): use "
                         f"{_choices(units)}"))
    allowed = DEVICE_CLASS_STATE_CLASSES.get(device_class or "")
    if state_class is not None and allowed is not None and state_class not in allowed:
        problems.append(("state_class", f"state class {state_class!r} is impossible with device "
                         f"class {device_class!r} in Home Assistant {HA_VERSION}: use "
                         f"{_choices(allowed) if allowed else 'none'} (state_class = \"none\" "
                         "for no state class)"))
    state_units = STATE_CLASS_UNITS.get(state_class or "")
    if state_units is not None and unit not in state_units:
        problems.append(("unit", f"state class {state_class!r} needs unit "
                         f"{_choices(state_units)} in Home Assistant {HA_VERSION}"))
    return problems
