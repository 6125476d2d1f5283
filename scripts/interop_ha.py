"""modemd against a real Home Assistant: run by scripts/interop-ha (outside CI).

A private mosquitto, a fresh Home Assistant (onboarded and given its MQTT integration through
its own API), modemd (``python -m modemd run``) on a simulated modem with the example device
rules; status SMS go in, and Home Assistant's REST and websocket APIs are asked what a user
would see. One ``[[smpp]]`` receiver bind runs against the test SMSC (tests/smsc.py, npm's
smpp server under node): its Home Assistant device, its entities, and what they show when the
SMSC drops the connection. Every check reports PASS, FAIL or NOT-PRESENT (the feature is not in
this modemd); one failing check never stops the others. Results go to a table and a JSON file.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "scripts"))

from ha_client import HAError, HomeAssistant, WebSocket, stop_group  # noqa: E402

from modemd.simulator import SimulatedModem  # noqa: E402
from modemd.sms.encode import encode_deliver  # noqa: E402
from modemd.sms.model import InformationElement  # noqa: E402
from tests.helpers import toml_value, write_config  # noqa: E402
from tests.mosquitto import Mosquitto, free_port  # noqa: E402
from tests.mqtt_client import Recorder  # noqa: E402
from tests.smsc import Smsc  # noqa: E402

GW = "gw1"
IMEI = "356938035643809"
PASS, FAIL, NOT_PRESENT = "PASS", "FAIL", "NOT-PRESENT"
TEMPLATE_WARNING = re.compile(r"Template variable (warning|error)|has no attribute")
#: Home Assistant log lines that concern MQTT entities (the rest is HA's own business)
MQTT_PROBLEM = re.compile(r"(WARNING|ERROR).*(mqtt|sensor|template|modemd)", re.IGNORECASE)
UNAVAILABLE = "unavailable"

#: the run's one [[smpp]] bind (a receiver, against tests/smsc.py's SMSC)
BIND = "agg"
SMPP_DEVICE = f"modemd_smpp_{GW}_{BIND}"
#: entity key -> (unique_id, name in Home Assistant)
SMPP_ENTITIES = {"online": (f"{SMPP_DEVICE}_online", "Connected"),
                 "last_error": (f"{SMPP_DEVICE}_last_error", "Last error"),
                 "reconnects": (f"{SMPP_DEVICE}_reconnects", "Reconnects")}
#: a dropped bind retries after reconnect_min: long enough that "off" lasts a few polls
SMPP_RECONNECT_MIN, SMPP_RECONNECT_MAX = 3, 6

OPTIONAL_RULE = """
[[parser]]
name = "interop-optional"
match = { text = "^DEV=OPT" }
format = "kv"
pair_separator = ";"
kv_separator = "="
device_field = "DEV"
measurement = "interop"

[parser.fields]
V = { name = "level", type = "float", unit = "V", device_class = "voltage" }
D = { name = "door", type = "bool", device_class = "door", required = false }
M = { name = "mode", type = "enum", required = false, values = { "0" = "idle", "1" = "busy" } }

[devices.OPT1]
name = "Optional-field probe"
model = "probe"
manufacturer = "modemd interop"
"""

# What a reading of each device must show: field -> (state, unit, device_class).
Expect = dict[str, tuple[str, str | None, str | None]]
PUMP01_FULL = "ID=PUMP01;BAT=3.71;T=21.5;P=2.4;RUN=1;ERR=1"
PUMP01_EXPECT: Expect = {
    "battery": ("3.71", "V", "voltage"), "temperature": ("21.5", "°C", "temperature"),
    "pressure": ("2.4", "bar", "pressure"), "running": ("on", None, "running"),
    "error": ("dry_run", None, "enum")}
PUMP02_FULL = "ID=PUMP02;BAT=3.80;T=19.0;P=1.9;RUN=0;ERR=0"
PUMP02_EXPECT: Expect = {
    "battery": ("3.8", "V", "voltage"), "running": ("off", None, "running"),
    "error": ("ok", None, "enum")}
METER_PAYLOAD = bytes.fromhex("39300000780065085a01")
METER_EXPECT: Expect = {
    # flow has no device class: Home Assistant 2025.4 refuses L/h for volume_flow_rate
    "volume": ("12345", "L", "water"), "flow": ("120", "L/h", None),
    "temperature": ("21.49", "°C", "temperature"), "battery": ("90", "%", "battery"),
    "flags": ("1", None, None), "leak": ("on", None, "moisture"),
    "tamper": ("off", None, "tamper"), "reverse_flow": ("off", None, None)}
TRACKER_TEXT = "TRK7,52.5200,13.4050,34.2,87,1"
TRACKER_EXPECT: Expect = {
    "latitude": ("52.52", "°", None), "longitude": ("13.405", "°", None),
    "speed": ("34.2", "km/h", "speed"), "battery": ("87", "%", "battery"),
    "gps_fix": ("on", None, None)}
OPT_FULL = "DEV=OPT1;V=1.5;D=1;M=1"
OPT_EXPECT: Expect = {
    "level": ("1.5", "V", "voltage"), "door": ("on", None, "door"),
    "mode": ("busy", None, "enum")}
DEVICE_META = {"PUMP01": ("Borehole pump 1", "Acme Pumps", "PC-200"),
               "PUMP02": ("Borehole pump 2", "Acme Pumps", "PC-200"),
               "WM-0042": ("Water meter, building 3", "Example Metering", "HydroCount 9"),
               "TRK7": ("Delivery van 7", "Concox", "GT-06"),
               "OPT1": ("Optional-field probe", "modemd interop", "probe")}


@dataclass
class Check:
    name: str
    status: str
    detail: str = ""
    evidence: dict[str, Any] = field(default_factory=dict)


class NotPresent(Exception):
    """The feature a check looks at does not exist in this modemd."""


class Failed(Exception):
    def __init__(self, detail: str, **evidence: Any) -> None:
        super().__init__(detail)
        self.evidence = evidence


def wait_for(predicate: Callable[[], Any], timeout: float, interval: float = 1.0) -> Any:
    """The predicate's first truthy value, or its last value after *timeout*."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(interval)


class Run:
    """Everything the run started, and the checks it made."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
        runs = Path(args.cache) / "runs"
        runs.mkdir(parents=True, exist_ok=True)
        self.dir: Path = Path(tempfile.mkdtemp(prefix=f"{stamp}-", dir=runs))
        self.checks: list[Check] = []
        self.broker = Mosquitto(self.dir / "mosquitto")
        self.ha = HomeAssistant(Path(args.hass), self.dir / "ha-config", free_port())
        self.sim: SimulatedModem | None = None
        self.modemd: subprocess.Popen[bytes] | None = None
        self.modemd_starts = 0
        self.config = self.dir / "modemd.toml"
        self.recorder: Recorder | None = None
        self.scts = datetime.now(UTC).replace(microsecond=0)
        self.ha_version = "?"
        self.smsc: Smsc | None = None
        #: what the SMPP drop check saw (its follow-up check reads it)
        self.smpp_watch: StateWatch | None = None
        self.smpp_docs_before_drop = 0

    # -- bookkeeping ----------------------------------------------------------------------

    def check(self, name: str, body: Callable[[], str | None]) -> Check:
        """Run one check; its exception is its verdict, never the end of the run."""
        try:
            detail = body() or ""
            result = Check(name, PASS, detail)
        except NotPresent as exc:
            result = Check(name, NOT_PRESENT, str(exc))
        except Failed as exc:
            result = Check(name, FAIL, str(exc), exc.evidence)
        except Exception as exc:  # noqa: BLE001 - a broken check is a failed check
            result = Check(name, FAIL, f"{type(exc).__name__}: {exc}",
                           {"traceback": traceback.format_exc()})
        self.checks.append(result)
        print(f"  {result.status:<11} {name}" + (f": {result.detail}" if result.detail else ""),
              flush=True)
        return result

    def log(self, text: str) -> None:
        print(f"[{datetime.now(UTC):%H:%M:%S}] {text}", flush=True)

    # -- modemd and the modem ----------------------------------------------------------------

    def write_modemd_config(self, *, meter: bool = True, pressure: bool = True,
                            expire_after: int | None = None) -> None:
        pump = (REPO / "config" / "devices-pump.toml").read_text(encoding="utf-8")
        if not pressure:
            pump = re.sub(r"(?m)^P +=.*\n", "", pump)
        if expire_after is not None:
            pump = re.sub(r"(?m)^expire_after = \d+", f"expire_after = {expire_after}", pump)
        rules = [pump, (REPO / "config" / "devices-tracker.toml").read_text(encoding="utf-8"),
                 OPTIONAL_RULE]
        if meter:
            rules.append((REPO / "config" / "devices-watermeter.toml").read_text(
                encoding="utf-8"))
        assert self.sim is not None
        write_config(self.config, state_dir=self.dir / "state",
                     modems=[{"name": "m1", "port": str(self.dir / "ttyMODEM")}],
                     mqtt={"host": "127.0.0.1", "port": self.broker.port,
                           "homeassistant": True},
                     gateway={"health_interval": 5},
                     extra="\n" + "\n".join(rules) + self.smpp_config())
        check = subprocess.run([str(REPO / ".venv/bin/python"), "-m", "modemd", "config",
                                "check", str(self.config)],
                               capture_output=True, text=True, cwd=REPO, check=False)
        if check.returncode != 0:
            raise RuntimeError(f"modemd config check refused the run's config:\n"
                               f"{check.stdout}{check.stderr}")

    def smpp_config(self) -> str:
        """The ``[[smpp]]`` receiver bind against the run's SMSC (as tests/test_smpp.py)."""
        assert self.smsc is not None
        password = self.dir / "smpp-password"
        password.write_text("secret\n", encoding="utf-8")
        settings = {"name": BIND, "host": "127.0.0.1", "port": self.smsc.port,
                    "system_id": "modemd", "password_file": str(password),
                    "reconnect_min": SMPP_RECONNECT_MIN, "reconnect_max": SMPP_RECONNECT_MAX}
        return "\n[[smpp]]\n" + "".join(f"{k} = {toml_value(v)}\n"
                                        for k, v in settings.items())

    def smpp_docs(self) -> list[dict[str, Any]]:
        """Every ``modemd/<gw>/smpp/<bind>/state`` modemd published, in order."""
        assert self.recorder is not None
        return [m.json() for m in self.recorder.on(f"modemd/{GW}/smpp/{BIND}/state")
                if m.payload]

    def start_modemd(self) -> None:
        self.modemd_starts += 1
        with (self.dir / "modemd.log").open("ab") as out:
            self.modemd = subprocess.Popen(
                [str(REPO / ".venv/bin/python"), "-m", "modemd", "run", "-c",
                 str(self.config)],
                stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=REPO,
                start_new_session=True)
        self.wait_gateway("online")

    def stop_modemd(self, sig: int = signal.SIGTERM) -> None:
        proc, self.modemd = self.modemd, None
        if proc is None:
            return
        if sig == signal.SIGKILL:
            proc.kill()
            proc.wait(10)
        else:
            stop_group(proc, timeout=30)

    def wait_gateway(self, payload: str, timeout: float = 60) -> None:
        def seen() -> bool:
            assert self.recorder is not None
            status = self.recorder.on(f"modemd/{GW}/status")
            return bool(status) and status[-1].payload.decode() == payload
        if not wait_for(seen, timeout, 0.2):
            raise RuntimeError(f"modemd/{GW}/status never became {payload!r}; see "
                               f"{self.dir}/modemd.log")

    def sms(self, sender: str, text: str | None = None, data: bytes | None = None,
            port: int | None = None) -> None:
        assert self.sim is not None
        self.scts += timedelta(seconds=1)
        udh = []
        if port is not None:
            udh = [InformationElement(0x05, port.to_bytes(2, "big") * 2)]
        self.sim.deliver(encode_deliver(sender=sender, text=text, data=data, udh=udh,
                                        scts=self.scts, smsc="+491710760000"))

    def device_state(self, device: str) -> dict[str, Any] | None:
        assert self.recorder is not None
        found = self.recorder.on(f"modemd/{GW}/device/{device}/state")
        return found[-1].json() if found and found[-1].payload else None

    def wait_device_state(self, device: str, count: int, timeout: float = 60) -> None:
        assert self.recorder is not None
        if not wait_for(lambda: len(self.recorder.on(  # type: ignore[union-attr]
                f"modemd/{GW}/device/{device}/state")) >= count, timeout, 0.2):
            raise RuntimeError(f"no state for {device} from modemd; see {self.dir}/modemd.log")

    def modem_state(self) -> dict[str, Any]:
        assert self.recorder is not None
        found = self.recorder.on(f"modemd/{GW}/modem/m1/state")
        return found[-1].json() if found and found[-1].payload else {}

    # -- Home Assistant views -------------------------------------------------------------

    def registry(self) -> dict[str, dict[str, Any]]:
        """unique_id -> entity registry entry, for modemd's MQTT entities.

        Field entities are keyed ``modemd_<gw>_<device>_<field>`` whichever form modemd
        sends (that one, or ``modemd/<gw>/<device>/<field>``, which cannot collide)."""
        found = {}
        for entry in self.ha.entity_registry():
            uid = str(entry.get("unique_id", ""))
            if entry.get("platform") != "mqtt" or not uid.startswith("modemd"):
                continue
            parts = uid.split("/")
            found["_".join(parts) if len(parts) == 4 else uid] = entry
        return found

    def devices(self) -> dict[str, dict[str, Any]]:
        """modemd identifier -> device registry entry."""
        found = {}
        for device in self.ha.device_registry():
            for domain, ident in device.get("identifiers", []):
                if domain == "mqtt" and ident.startswith("modemd_"):
                    found[ident] = device
        return found

    def entity_of(self, unique_id: str) -> str | None:
        entry = self.registry().get(unique_id)
        return entry["entity_id"] if entry else None

    def state_of(self, unique_id: str) -> dict[str, Any] | None:
        entity_id = self.entity_of(unique_id)
        return self.ha.state(entity_id) if entity_id else None

    def wait_entities(self, unique_ids: list[str], timeout: float = 60,
                      ready: Callable[[dict[str, Any]], bool] | None = None) -> None:
        def present() -> bool:
            reg = self.registry()
            if not all(u in reg for u in unique_ids):
                return False
            if ready is None:
                return True
            states = {s["entity_id"]: s for s in self.ha.states()}
            return all(ready(states.get(reg[u]["entity_id"], {})) for u in unique_ids)
        wait_for(present, timeout)

    def log_text(self, offset: int = 0) -> str:
        try:
            with self.ha.log_file.open("rb") as f:
                f.seek(offset)
                return f.read().decode(errors="replace")
        except FileNotFoundError:
            return ""

    def log_size(self) -> int:
        return self.ha.log_file.stat().st_size if self.ha.log_file.exists() else 0

    def restart_ha(self) -> None:
        self.keep_ha_log()
        self.ha.stop()
        self.ha.start()

    def keep_ha_log(self) -> None:
        """HA rotates home-assistant.log at start: keep each run's log for the final scan."""
        if self.ha.log_file.exists():
            target = self.dir / f"home-assistant-{self.ha.starts}.log"
            target.write_bytes(self.ha.log_file.read_bytes())

    # -- the run ----------------------------------------------------------------------------

    def setup(self) -> None:
        self.log(f"run directory {self.dir}")
        self.broker.start()
        self.recorder = Recorder(self.broker.port, ["modemd/#", "homeassistant/#"])
        self.log(f"mosquitto on 127.0.0.1:{self.broker.port}; starting Home Assistant on "
                 f"127.0.0.1:{self.ha.port}")
        self.ha.write_config()
        self.ha.start()
        self.ha.onboard()
        exposed = self.ha.exposed_sockets()
        if exposed:
            raise RuntimeError("Home Assistant listens beyond 127.0.0.1: " + "; ".join(exposed))
        self.ha_version = self.ha.version()
        self.log(f"Home Assistant {self.ha_version} onboarded; adding the MQTT integration")
        self.ha.add_mqtt(self.broker.port)
        self.sim = SimulatedModem(profile="quectel_ec25", imei=IMEI,
                                  link_path=self.dir / "ttyMODEM")
        self.sim.start()
        self.smsc = Smsc(system_id="modemd", password="secret").start()
        self.log(f"test SMSC (npm smpp under node) on 127.0.0.1:{self.smsc.port}")
        self.write_modemd_config()
        self.start_modemd()
        self.log("modemd online; sending status SMS")

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.stop_modemd()
        with contextlib.suppress(Exception):
            self.keep_ha_log()
        with contextlib.suppress(Exception):
            self.ha.stop()
        if self.recorder is not None:
            with contextlib.suppress(Exception):
                self.recorder.close()
        with contextlib.suppress(Exception):
            self.broker.stop()
        if self.sim is not None:
            with contextlib.suppress(Exception):
                self.sim.stop()
        if self.smpp_watch is not None:
            self.smpp_watch.close()
        if self.smsc is not None:
            with contextlib.suppress(Exception):
                self.smsc.stop()


class StateWatch:
    """Home Assistant's ``state_changed`` events for some entities, from a websocket
    subscription of their own: every state HA took, however briefly it held it."""

    def __init__(self, ha: HomeAssistant, entity_ids: set[str]) -> None:
        self.entity_ids = entity_ids
        self.seen: list[tuple[float, str, str | None]] = []
        self.error: str | None = None
        self.started = time.monotonic()
        self.ws = WebSocket("127.0.0.1", ha.port, "/api/websocket", timeout=300)
        if self.ws.receive().get("type") != "auth_required":
            raise HAError("websocket: unexpected greeting")
        self.ws.send({"type": "auth", "access_token": ha.token})
        if self.ws.receive().get("type") != "auth_ok":
            raise HAError("websocket: authentication refused")
        self.ws.send({"id": 1, "type": "subscribe_events", "event_type": "state_changed"})
        while True:
            answer = self.ws.receive()
            if answer.get("id") == 1 and answer.get("type") == "result":
                break
        if not answer.get("success"):
            raise HAError(f"websocket subscribe_events: {answer.get('error')}")
        threading.Thread(target=self._reader, name="ha-state-watch", daemon=True).start()

    def _reader(self) -> None:
        try:
            while True:
                message = self.ws.receive()
                if message.get("type") != "event":
                    continue
                data = message.get("event", {}).get("data", {})
                if data.get("entity_id") in self.entity_ids:
                    new = data.get("new_state") or {}
                    self.seen.append((round(time.monotonic() - self.started, 2),
                                      data["entity_id"], new.get("state")))
        except (HAError, OSError, ValueError) as exc:
            self.error = f"{type(exc).__name__}: {exc}"

    def states(self, entity_id: str) -> list[str | None]:
        return [state for _, eid, state in list(self.seen) if eid == entity_id]

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.ws.sock.shutdown(2)
        with contextlib.suppress(OSError):
            self.ws.close()


# --- checks -------------------------------------------------------------------------------


def field_uid(device: str, name: str) -> str:
    return f"modemd_{GW}_{device}_{name}"


def compare_fields(run: Run, device: str, expect: Expect) -> str:
    reg = run.registry()
    states = {s["entity_id"]: s for s in run.ha.states()}
    problems, seen = [], {}
    for name, (state, unit, device_class) in expect.items():
        entry = reg.get(field_uid(device, name))
        if entry is None:
            problems.append(f"{name}: no entity")
            continue
        current = states.get(entry["entity_id"], {})
        attrs = current.get("attributes", {})
        seen[name] = {"entity_id": entry["entity_id"], "state": current.get("state"),
                      "unit": attrs.get("unit_of_measurement"),
                      "device_class": attrs.get("device_class")}
        if current.get("state") != state:
            problems.append(f"{name}: state {current.get('state')!r} != {state!r}")
        if attrs.get("unit_of_measurement") != unit:
            problems.append(f"{name}: unit {attrs.get('unit_of_measurement')!r} != {unit!r}")
        if attrs.get("device_class") != device_class:
            problems.append(f"{name}: device_class {attrs.get('device_class')!r} != "
                            f"{device_class!r}")
    if problems:
        raise Failed("; ".join(problems), entities=seen)
    return f"{len(expect)} entities: " + ", ".join(
        f"{n}={v['state']}{(' ' + v['unit']) if v['unit'] else ''}" for n, v in seen.items())


def check_device_block(run: Run, device: str) -> str:
    name, manufacturer, model = DEVICE_META[device]
    devices = run.devices()
    found = devices.get(f"{GW}_{device}") or devices.get(f"modemd_{GW}_{device}")
    if found is None:
        raise Failed(f"no device modemd_{GW}_{device} in the device registry")
    gateway = devices.get(f"modemd_{GW}")
    got = {"name": found.get("name"), "manufacturer": found.get("manufacturer"),
           "model": found.get("model"), "via_device_id": found.get("via_device_id"),
           "suggested_area": found.get("suggested_area"), "area_id": found.get("area_id")}
    problems = [f"{k} {got[k]!r} != {v!r}" for k, v in
                (("name", name), ("manufacturer", manufacturer), ("model", model))
                if got[k] != v]
    if gateway is None or got["via_device_id"] != gateway["id"]:
        problems.append("via_device is not the gateway's device")
    if problems:
        raise Failed("; ".join(problems), device=got)
    return f"{name} / {manufacturer} / {model}, via the gateway"


def check_gateway(run: Run) -> str:
    current = run.state_of(f"modemd_{GW}_status")
    if current is None:
        raise Failed("no gateway status entity")
    if current["state"] != "on" or current["attributes"].get("device_class") != "connectivity":
        raise Failed(f"state {current['state']!r}, device_class "
                     f"{current['attributes'].get('device_class')!r}", state=current)
    return f"{current['entity_id']} = on (connectivity)"


def modem_entities(run: Run) -> tuple[dict[str, Any] | None, list[dict[str, Any]]]:
    device = run.devices().get(f"modemd_modem_imei_{IMEI}")
    if device is None:
        return None, []
    return device, [e for e in run.registry().values() if e.get("device_id") == device["id"]]


def check_modem_sensors(run: Run) -> str:
    doc = run.modem_state()
    expect = {f"modemd_modem_imei_{IMEI}_signal": (str(doc.get("signal", {}).get("rssi")),
                                                    "dBm", "signal_strength"),
              f"modemd_modem_imei_{IMEI}_registration": (str(doc.get("registration")),
                                                          None, None),
              f"modemd_modem_imei_{IMEI}_storage_used": (str(doc.get("storage", {}).get(
                  "used")), None, None)}
    problems, seen = [], {}
    for uid, (state, unit, device_class) in expect.items():
        current = run.state_of(uid)
        if current is None:
            problems.append(f"{uid}: no entity")
            continue
        attrs = current["attributes"]
        seen[uid] = current["state"]
        if current["state"] != state:
            problems.append(f"{uid}: {current['state']!r} != modem state {state!r}")
        if attrs.get("unit_of_measurement") != unit or attrs.get("device_class") != device_class:
            problems.append(f"{uid}: unit/device_class {attrs.get('unit_of_measurement')!r}/"
                            f"{attrs.get('device_class')!r}")
    if problems:
        raise Failed("; ".join(problems), modem_state=doc, entities=seen)
    return ", ".join(f"{k.rsplit('_', 1)[-1] if 'storage' not in k else 'storage_used'}={v}"
                     for k, v in seen.items())


def check_modem_device(run: Run) -> str:
    device, _ = modem_entities(run)
    doc = run.modem_state()
    if device is None:
        raise Failed(f"no device modemd_modem_imei_{IMEI}")
    got = {k: device.get(k) for k in ("name", "manufacturer", "model", "sw_version")}
    problems = [f"{k} {got[k]!r} != modem's {doc.get(k)!r}" for k in ("manufacturer", "model")
                if got[k] != doc.get(k)]
    if problems:
        raise Failed("; ".join(problems), device=got, modem_state=doc)
    return f"{got['name']}: {got['manufacturer']} {got['model']}"


def check_modem_firmware(run: Run) -> str:
    device, _ = modem_entities(run)
    doc = run.modem_state()
    if device is None:
        raise Failed("no modem device")
    if not device.get("sw_version"):
        raise NotPresent("no sw_version (firmware) in the modem's device block")
    if device["sw_version"] != doc.get("revision"):
        raise Failed(f"sw_version {device['sw_version']!r} != revision {doc.get('revision')!r}")
    return f"sw_version {device['sw_version']}"


def modem_connectivity(run: Run) -> dict[str, Any] | None:
    _, entries = modem_entities(run)
    for entry in entries:
        if entry["entity_id"].startswith("binary_sensor."):
            current = run.ha.state(entry["entity_id"])
            if current and current["attributes"].get("device_class") == "connectivity":
                return current
    return None


def modem_last_error(run: Run) -> dict[str, Any] | None:
    _, entries = modem_entities(run)
    for entry in entries:
        if "error" in entry["unique_id"] and entry["entity_id"].startswith("sensor."):
            return run.ha.state(entry["entity_id"])
    return None


def check_connectivity_on(run: Run) -> str:
    current = modem_connectivity(run)
    if current is None:
        raise NotPresent("no connectivity binary_sensor on the modem's device")
    if current["state"] != "on":
        raise Failed(f"{current['entity_id']} is {current['state']!r} while the modem is online",
                     state=current, modem_state=run.modem_state())
    return f"{current['entity_id']} = on"


def check_last_error(run: Run) -> str:
    current = modem_last_error(run)
    if current is None:
        raise NotPresent("no last-error sensor on the modem's device")
    doc_error = run.modem_state().get("last_error")
    if doc_error is not None and current["state"] != str(doc_error):
        raise Failed(f"{current['state']!r} != modem's last_error {doc_error!r}")
    return f"{current['entity_id']} = {current['state']!r}"


def check_unplugged(run: Run, signal_before: str | None) -> str:
    """The modem vanishes (USB unplug): HA must not keep showing its last signal as current."""
    assert run.sim is not None
    uid = f"modemd_modem_imei_{IMEI}_signal"
    run.sim.vanish()
    try:
        def offline_published() -> bool:
            return run.modem_state().get("online") is False
        wait_for(offline_published, 40)
        time.sleep(3)
        doc = run.modem_state()
        signal_now = run.state_of(uid)
        conn = modem_connectivity(run)
        problems = []
        if doc.get("online") is not False:
            problems.append(f"modemd never published online=false ({doc.get('online')!r})")
        if signal_now and signal_now["state"] not in (UNAVAILABLE, "unknown"):
            problems.append(f"signal still shows {signal_now['state']} dBm "
                            f"(before unplug: {signal_before})")
        if conn is not None and conn["state"] != "off":
            problems.append(f"connectivity {conn['state']!r}, not off")
        if problems:
            raise Failed("; ".join(problems), modem_state=doc, signal=signal_now,
                         connectivity=conn)
        return ("signal " + (signal_now["state"] if signal_now else "gone")
                + (f", connectivity {conn['state']}" if conn else ", no connectivity entity"))
    finally:
        run.sim.reappear(new_path=False)


def check_replugged(run: Run) -> str:
    uid = f"modemd_modem_imei_{IMEI}_signal"

    def back() -> dict[str, Any] | None:
        current = run.state_of(uid)
        if run.modem_state().get("online") and current and current["state"] not in (
                UNAVAILABLE, "unknown", "None"):
            return current
        return None
    current = wait_for(back, 60)
    if not current:
        raise Failed("signal did not come back after the modem reappeared",
                     modem_state=run.modem_state(), signal=run.state_of(uid))
    conn = modem_connectivity(run)
    if conn is not None and conn["state"] != "on":
        raise Failed(f"connectivity {conn['state']!r} after the modem came back")
    return f"signal {current['state']} dBm" + (f", connectivity {conn['state']}" if conn else "")


def template_warnings(text: str) -> list[str]:
    return [line for line in text.splitlines() if TEMPLATE_WARNING.search(line)]


def check_optional(run: Run, device: str, text: str, *, kept: list[str], enums: list[str],
                   changed: tuple[str, str]) -> str:
    """A reading without optional fields: the issue's rule for Home Assistant.

    *kept* (numbers, binary sensors) keep their state (a binary sensor is not flipped to off);
    *enums* do not keep showing their previous label as current (``unknown`` is expected: the
    reading says nothing about them); Home Assistant logs no template warning. *changed*
    (field, new state) proves the reading was applied.
    """
    fields = kept + enums
    before = {n: (run.state_of(field_uid(device, n)) or {}).get("state") for n in fields}
    offset = run.log_size()
    count = len(run.recorder.on(f"modemd/{GW}/device/{device}/state"))  # type: ignore[union-attr]
    run.sms("+4915112345678", text)
    run.wait_device_state(device, count + 1)
    name, state = changed
    wait_for(lambda: (run.state_of(field_uid(device, name)) or {}).get("state") == state, 30)
    time.sleep(2)
    after = {n: (run.state_of(field_uid(device, n)) or {}).get("state") for n in fields}
    warnings = template_warnings(run.log_text(offset))
    problems = [f"{n}: {before[n]!r} -> {after[n]!r}" for n in kept if after[n] != before[n]]
    problems += [f"{n}: still shows the label {before[n]!r} of an earlier reading"
                 for n in enums if after[n] == before[n]]
    current = (run.state_of(field_uid(device, name)) or {}).get("state")
    if current != state:
        problems.append(f"the reading was not applied ({name} {current!r} != {state!r})")
    if warnings:
        problems.append(f"{len(warnings)} template warning(s) in HA's log")
    if problems:
        raise Failed("; ".join(problems), before=before, after=after, log=warnings[:10],
                     state_document=run.device_state(device))
    return ", ".join(f"{n} {before[n]} -> {after[n]}" for n in fields) + ", no template warning"


def modemd_entity_ids(run: Run) -> list[str]:
    return [e["entity_id"] for u, e in run.registry().items() if u != f"modemd_{GW}_status"]


def check_availability(run: Run, sig: int) -> str:
    entity_ids = modemd_entity_ids(run)
    run.stop_modemd(sig)
    run.wait_gateway("offline", timeout=60)

    def all_unavailable() -> list[str]:
        states = {s["entity_id"]: s["state"] for s in run.ha.states()}
        return [e for e in entity_ids if states.get(e) != UNAVAILABLE]
    left = wait_for(lambda: not all_unavailable(), 30) or all_unavailable()
    gateway = run.state_of(f"modemd_{GW}_status")
    problems = []
    if left is not True and left:
        problems.append(f"{len(left)} entities not unavailable: {left[:5]}")
    if gateway is None or gateway["state"] != "off":
        problems.append(f"gateway status {gateway and gateway['state']!r}, not off")
    if problems:
        raise Failed("; ".join(problems))
    return f"{len(entity_ids)} entities unavailable, gateway status off"


def check_available_again(run: Run, entity_ids: list[str]) -> str:
    run.start_modemd()

    def still() -> list[str]:
        states = {s["entity_id"]: s["state"] for s in run.ha.states()}
        return [e for e in entity_ids if states.get(e) in (UNAVAILABLE, None)]
    ok = wait_for(lambda: not still(), 30)
    left = [] if ok else still()
    if left:
        raise Failed(f"{len(left)} entities still unavailable: {left[:5]}")
    return f"{len(entity_ids)} entities available again"


def retained_snapshot(run: Run, pattern: str, settle: float = 3.0) -> dict[str, bytes]:
    """Retained messages the broker holds under *pattern* (a fresh subscription)."""
    fresh = Recorder(run.broker.port, [pattern])
    try:
        time.sleep(settle)
        return {m.topic: m.payload for m in fresh.on(pattern) if m.retain and m.payload}
    finally:
        fresh.close()


def check_rule_removed(run: Run, device: str, uids: list[str]) -> str:
    def gone() -> bool:
        reg = run.registry()
        return not any(u in reg for u in uids)
    if not wait_for(gone, 30):
        reg = run.registry()
        raise Failed(f"still registered: {[reg[u]['entity_id'] for u in uids if u in reg]}")
    devices = run.devices()
    leftover = f"modemd_{GW}_{device}" in devices
    states = [s["entity_id"] for s in run.ha.states() if f"_{device.lower()}" in
              s["entity_id"].replace("-", "_")]
    problems = []
    if states:
        problems.append(f"states left: {states[:5]}")
    if leftover:
        problems.append(f"device modemd_{GW}_{device} still in the device registry")
    if problems:
        raise Failed("; ".join(problems))
    return f"{len(uids)} entities and the device removed"


def check_fields_removed_at_restart(run: Run, uids: list[str]) -> str:
    if wait_for(lambda: not any(u in run.registry() for u in uids), 20):
        return "removed at modemd's start, without a new SMS"
    raise Failed(f"still registered 20 s after modemd's restart: "
                 f"{[u for u in uids if u in run.registry()]} (removed only at the device's "
                 "next reading?)")


def check_field_removed_after_reading(run: Run, device: str, sender: str, text: str,
                                      uid: str) -> str:
    if uid in run.registry():
        count = len(run.recorder.on(f"modemd/{GW}/device/{device}/state"))  # type: ignore[union-attr]
        run.sms(sender, text)
        run.wait_device_state(device, count + 1)
    if wait_for(lambda: uid not in run.registry(), 30):
        return "removed"
    raise Failed("still registered after the device's next reading")


def check_expired(run: Run, uids: list[str], expire_after: int) -> str:
    def not_expired() -> dict[str, str]:
        return {u: (run.state_of(u) or {}).get("state", "?") for u in uids
                if (run.state_of(u) or {}).get("state") != UNAVAILABLE}
    left = {} if wait_for(lambda: not not_expired(), 20) else not_expired()
    if left:
        raise Failed(f"not unavailable {expire_after} s after the last reading: {left}")
    return f"{len(uids)} entities unavailable after {expire_after} s without a reading"


def check_still_expired(run: Run, uids: list[str]) -> str:
    states = {u: (run.state_of(u) or {}).get("state") for u in uids}
    alive = {u: s for u, s in states.items() if s != UNAVAILABLE}
    if alive:
        raise Failed(f"expired entities show values again after HA's restart: {alive}",
                     retained=sorted(retained_snapshot(run, f"modemd/{GW}/device/#")))
    return f"{len(uids)} entities stay unavailable"


def non_restored(run: Run, uids: list[str]) -> dict[str, str]:
    """Entities among *uids* that HA only restored from its registry (not discovered)."""
    states = {s["entity_id"]: s for s in run.ha.states()}
    reg = run.registry()
    missing = {}
    for uid in uids:
        entry = reg.get(uid)
        current = states.get(entry["entity_id"]) if entry else None
        if current is None:
            missing[uid] = "no entity"
        elif current["attributes"].get("restored"):
            missing[uid] = "restored only (no discovery config)"
    return missing


def check_birth(run: Run, uids: list[str]) -> str:
    """HA restarts and the retained discovery configs are gone (e.g. deleted by a broker
    tool): modemd must answer HA's birth message with every configured entity."""
    run.keep_ha_log()
    run.ha.stop()
    configs = retained_snapshot(run, "homeassistant/#")
    for topic in configs:
        if topic.endswith("/config"):
            run.recorder.client.publish(topic, "", qos=1, retain=True)  # type: ignore[union-attr]
    time.sleep(1)
    run.ha.start()
    left = {} if wait_for(lambda: not non_restored(run, uids), 40) else non_restored(run, uids)
    if left:
        raise Failed(f"{len(left)} of {len(uids)} entities not announced after HA's birth "
                     f"message: {sorted(left)[:6]}", missing=left)
    return f"{len(uids)} entities announced again on homeassistant/status online"


def check_broker_restart(run: Run, expected: set[str]) -> str:
    run.keep_ha_log()
    run.ha.stop()
    run.broker.stop()
    time.sleep(1)
    run.broker.start()
    assert run.recorder is not None
    run.recorder.close()
    run.recorder = Recorder(run.broker.port, ["modemd/#", "homeassistant/#"])
    run.wait_gateway("online", timeout=90)
    time.sleep(12)  # two health polls: modem configs go out with the modem's state
    configs = set(retained_snapshot(run, "homeassistant/#"))
    missing = sorted(expected - configs)
    if missing:
        raise Failed(f"{len(missing)} of {len(expected)} discovery configs not re-announced "
                     f"after modemd reconnected to an empty broker: {missing[:6]}",
                     missing=missing)
    return f"all {len(expected)} discovery configs retained again"


def check_ha_after_broker_restart(run: Run, uids: list[str]) -> str:
    run.ha.start()
    left = {} if wait_for(lambda: not non_restored(run, uids), 40) else non_restored(run, uids)
    if left:
        raise Failed(f"{len(left)} of {len(uids)} entities missing (no new SMS sent): "
                     f"{sorted(left)[:6]}", missing=left)
    return f"{len(uids)} entities back without a new SMS"


def check_tracker(run: Run) -> str:
    trackers = [e for e in run.registry().values()
                if e["entity_id"].startswith("device_tracker.") and "TRK7" in e["unique_id"]]
    if not trackers:
        raise NotPresent("no device_tracker entity for TRK7")
    current = run.ha.state(trackers[0]["entity_id"])
    attrs = (current or {}).get("attributes", {})
    if attrs.get("latitude") != 52.52 or attrs.get("longitude") != 13.405:
        raise Failed(f"latitude/longitude {attrs.get('latitude')}/{attrs.get('longitude')}",
                     state=current)
    return f"{trackers[0]['entity_id']} at {attrs['latitude']},{attrs['longitude']}"


def check_tracker_attributes(run: Run) -> str:
    trackers = [e for e in run.registry().values()
                if e["entity_id"].startswith("device_tracker.") and "TRK7" in e["unique_id"]]
    if not trackers:
        raise NotPresent("no device_tracker entity for TRK7")
    attrs = (run.ha.state(trackers[0]["entity_id"]) or {}).get("attributes", {})
    if attrs.get("speed") != 34.2:
        raise NotPresent(f"the state document is not offered as attributes ({sorted(attrs)})")
    return "speed, battery, gps_fix as attributes"


# --- the SMPP bind ------------------------------------------------------------------------


def smpp_entities(run: Run) -> dict[str, str]:
    """Entity key (online, last_error, reconnects) -> entity_id, for those HA registered."""
    reg = run.registry()
    return {key: reg[uid]["entity_id"] for key, (uid, _) in SMPP_ENTITIES.items() if uid in reg}


def smpp_states(run: Run) -> dict[str, str | None]:
    """Entity key -> the state Home Assistant shows now (None: no such entity)."""
    ids = smpp_entities(run)
    states = {s["entity_id"]: s for s in run.ha.states()}
    return {key: states.get(ids[key], {}).get("state") if key in ids else None
            for key in SMPP_ENTITIES}


def smpp_doc_summary(docs: list[dict[str, Any]]) -> list[str]:
    return [f"{d.get('state')} online={d.get('online')} reconnects={d.get('reconnects')} "
            f"last_error={d.get('last_error')!r}" for d in docs]


def check_smpp_device(run: Run) -> str:
    """The bind's own device, via the gateway's, with its three entities."""
    devices = run.devices()
    device = devices.get(SMPP_DEVICE)
    if device is None:
        raise Failed(f"no device {SMPP_DEVICE} in the device registry",
                     devices=sorted(devices), retained=sorted(retained_snapshot(
                         run, f"homeassistant/+/{GW}_smpp_{BIND}/#")))
    gateway = devices.get(f"modemd_{GW}")
    got = {k: device.get(k) for k in ("name", "manufacturer", "model", "via_device_id")}
    problems = []
    if got["name"] != f"SMPP {BIND}":
        problems.append(f"name {got['name']!r} != 'SMPP {BIND}'")
    if gateway is None or got["via_device_id"] != gateway["id"]:
        problems.append("via_device is not the gateway's device")
    reg = run.registry()
    entities = {}
    for key, (uid, name) in SMPP_ENTITIES.items():
        entry = reg.get(uid)
        if entry is None:
            problems.append(f"{key}: no entity {uid}")
            continue
        entities[key] = {k: entry.get(k) for k in ("entity_id", "original_name",
                                                    "entity_category", "device_id")}
        domain = "binary_sensor" if key == "online" else "sensor"
        if not entry["entity_id"].startswith(f"{domain}."):
            problems.append(f"{key}: {entry['entity_id']} is not a {domain}")
        if entry.get("device_id") != device["id"]:
            problems.append(f"{key}: {entry['entity_id']} is not on the bind's device")
        if entry.get("original_name") not in (name, None):
            problems.append(f"{key}: name {entry.get('original_name')!r} != {name!r}")
    others = [e["entity_id"] for e in reg.values()
              if e.get("device_id") == device["id"]
              and e["unique_id"] not in {u for u, _ in SMPP_ENTITIES.values()}]
    if others:
        problems.append(f"unexpected entities on the bind's device: {others}")
    if problems:
        raise Failed("; ".join(problems), device=got, entities=entities)
    return (f"{got['name']} ({got['model']}), via the gateway: "
            + ", ".join(str(e["entity_id"]) for e in entities.values()))


def check_smpp_bound(run: Run) -> str:
    """Bound: Connected on (connectivity), Last error "none", Reconnects "0"."""
    expect = {"online": "on", "last_error": "none", "reconnects": "0"}
    wait_for(lambda: smpp_states(run) == expect, 60, 0.5)
    ids = smpp_entities(run)
    if not ids:
        raise Failed("no SMPP bind entities")
    shown = {key: run.ha.state(eid) or {} for key, eid in ids.items()}
    states = {key: s.get("state") for key, s in shown.items()}
    docs = run.smpp_docs()
    problems = [f"{key} {states.get(key)!r} != {value!r}" for key, value in expect.items()
                if states.get(key) != value]
    online_attrs = shown.get("online", {}).get("attributes", {})
    if online_attrs.get("device_class") != "connectivity":
        problems.append(f"Connected device_class {online_attrs.get('device_class')!r}")
    reconnect_attrs = shown.get("reconnects", {}).get("attributes", {})
    if reconnect_attrs.get("state_class") != "total_increasing":
        problems.append(f"Reconnects state_class {reconnect_attrs.get('state_class')!r}")
    if not docs or docs[-1].get("state") != "bound" or docs[-1].get("online") is not True:
        problems.append(f"modemd's last bind state is not bound: {smpp_doc_summary(docs[-1:])}")
    if problems:
        raise Failed("; ".join(problems), states=shown, bind_state=docs[-1:] or None)
    return ", ".join(f"{ids[k]} = {states[k]!r}" for k in expect) + (
        f"; modemd: {smpp_doc_summary(docs[-1:])[0]}")


def check_smpp_dropped(run: Run) -> str:
    """The SMSC destroys the connection (as a failing link does): HA shows Connected off and
    a Last error at some point (state_changed events and polls), and Reconnects 1."""
    assert run.smsc is not None
    ids = smpp_entities(run)
    if len(ids) != len(SMPP_ENTITIES):
        raise Failed(f"SMPP bind entities missing: {sorted(set(SMPP_ENTITIES) - set(ids))}")
    try:
        run.smpp_watch = StateWatch(run.ha, set(ids.values()))
    except (HAError, OSError) as exc:
        print(f"    (no state_changed subscription: {exc}; polling only)", flush=True)
    run.smpp_docs_before_drop = len(run.smpp_docs())
    polled: dict[str, list[str | None]] = {key: [] for key in SMPP_ENTITIES}
    dropped_at = len(run.smsc.events)
    run.smsc.command(cmd="drop")

    def seen() -> dict[str, list[str | None]]:
        for key, state in smpp_states(run).items():
            if not polled[key] or polled[key][-1] != state:
                polled[key].append(state)
        watch = run.smpp_watch
        return {key: [*polled[key], *(watch.states(ids[key]) if watch else [])]
                for key in SMPP_ENTITIES}

    def down_seen() -> bool:
        states = seen()
        return ("off" in states["online"]
                and any(s not in ("none", None, UNAVAILABLE, "unknown")
                        for s in states["last_error"])
                and "1" in states["reconnects"])
    wait_for(down_seen, 30, 0.25)
    states = seen()
    docs = run.smpp_docs()[run.smpp_docs_before_drop:]
    errors = [s for s in states["last_error"] if s not in ("none", None, UNAVAILABLE, "unknown")]
    problems = []
    try:
        run.smsc.wait_event(lambda e: e["event"] == "dropped", timeout=5, after=dropped_at)
    except AssertionError:
        problems.append("the SMSC never reported the drop")
    if "off" not in states["online"]:
        problems.append(f"Connected never off (states seen: {states['online']})")
    if not errors:
        problems.append(f"Last error never showed a reason (states seen: "
                        f"{states['last_error']})")
    if "1" not in states["reconnects"]:
        problems.append(f"Reconnects never 1 (states seen: {states['reconnects']})")
    evidence = {"ha_states_seen": states, "bind_states_published": docs,
                "events": list(run.smpp_watch.seen) if run.smpp_watch else None}
    if problems:
        raise Failed("; ".join(problems), **evidence)
    watch = run.smpp_watch
    order = {key: (watch.states(ids[key]) if watch and watch.states(ids[key]) else polled[key])
             for key in ("online", "reconnects")}
    return (f"Connected {' -> '.join(map(str, dedupe(order['online'])))}, Last error "
            f"{errors[0]!r}, Reconnects {' -> '.join(map(str, dedupe(order['reconnects'])))}"
            f" ({'state_changed events' if watch else 'polls'}); modemd published: "
            f"{'; '.join(smpp_doc_summary(docs))}")


def dedupe(states: list[str | None]) -> list[str | None]:
    return [s for i, s in enumerate(states) if i == 0 or states[i - 1] != s]


def check_smpp_rebound(run: Run) -> str:
    """The bind reconnects after reconnect_min: Connected on again, Last error back to "none"
    (null while bound), Reconnects stays 1."""
    expect = {"online": "on", "last_error": "none", "reconnects": "1"}
    wait_for(lambda: smpp_states(run) == expect, 30 + SMPP_RECONNECT_MAX, 0.5)
    states = smpp_states(run)
    docs = run.smpp_docs()[run.smpp_docs_before_drop:]
    watch, run.smpp_watch = run.smpp_watch, None
    events = list(watch.seen) if watch else None
    if watch is not None:
        watch.close()
    problems = [f"{key} {states[key]!r} != {value!r}" for key, value in expect.items()
                if states[key] != value]
    if not docs or docs[-1].get("state") != "bound":
        problems.append(f"modemd's last bind state is not bound: {smpp_doc_summary(docs[-1:])}")
    if problems:
        raise Failed("; ".join(problems), states=states, bind_states_published=docs,
                     events=events)
    changes = [f"{t:.1f}s {eid.split('.', 1)[1]}={state}" for t, eid, state in events or []]
    return (", ".join(f"{k}={v!r}" for k, v in states.items())
            + (f"; HA's state changes after the drop: {', '.join(changes)}" if changes else ""))


def check_smpp_log(run: Run) -> str:
    """No warning or error of Home Assistant that names the bind's entities, their topics or
    their discovery configs (every line with "smpp" at WARNING or above, template warnings)."""
    run.keep_ha_log()
    lines: list[str] = []
    for path in sorted(run.dir.glob("home-assistant-*.log")):
        for line in path.read_text(errors="replace").splitlines():
            if "smpp" not in line.lower():
                continue
            if (re.search(r"\b(WARNING|ERROR|CRITICAL)\b", line) or TEMPLATE_WARNING.search(line)
                    or REJECTED_CONFIG.search(line)):
                lines.append(f"{path.name}: {line[:400]}")
    if lines:
        raise Failed(f"{len(lines)} complaint(s) about the SMPP entities, first: {lines[0]}",
                     lines=lines[:40])
    return "no warning, error or template complaint naming smpp"


#: what HA logs when it refuses (or will soon refuse) a discovery config's combination
REJECTED_CONFIG = re.compile(r"not valid together with device class|not a valid unit for the "
                             r"device class|when processing MQTT discovery message|"
                             r"Invalid config for|Error '.*' when processing")


def check_configs_accepted(run: Run) -> str:
    lines = [line[:400] for line in run.log_text().splitlines()
             if REJECTED_CONFIG.search(line) and ("mqtt" in line or "sensor" in line)]
    if lines:
        raise Failed(f"{len(lines)} complaint(s), first: {lines[0]}", lines=lines)
    return "no discovery config refused or deprecated"


def check_log(run: Run) -> str:
    run.keep_ha_log()
    lines: list[str] = []
    for path in sorted(run.dir.glob("home-assistant-*.log")):
        for line in path.read_text(errors="replace").splitlines():
            if TEMPLATE_WARNING.search(line) or (MQTT_PROBLEM.search(line) and "mqtt" in line
                                                 .lower()):
                lines.append(f"{path.name}: {line[:300]}")
    if lines:
        raise Failed(f"{len(lines)} MQTT/template warning(s), first: {lines[0]}", lines=lines[:40])
    return "no MQTT or template warnings"


# --- the scenario ------------------------------------------------------------------------


def check_announced_before_sms(run: Run) -> str:
    """A device of ``[devices]`` whose numbers match a rule's senders: its entities exist before
    it ever reports (discovery at connect), showing no value yet."""
    uids = [field_uid("PUMP02", n) for n in PUMP02_EXPECT]
    if not wait_for(lambda: all(u in run.registry() for u in uids), 15):
        raise NotPresent("PUMP02 has no entities before its first SMS")
    states = {u: (run.state_of(u) or {}).get("state") for u in uids}
    shown = {u: s for u, s in states.items() if s not in ("unknown", UNAVAILABLE)}
    if shown:
        raise Failed(f"entities of a device that never reported show values: {shown}")
    return f"{len(uids)} entities, no value yet"


def scenario(run: Run) -> None:
    args = run.args
    run.check("configured device (PUMP02) announced before any SMS",
              lambda: check_announced_before_sms(run))
    run.sms("+4915112345678", PUMP01_FULL)
    run.sms("+4916098765432", PUMP02_FULL)
    run.sms("+4917012345678", data=METER_PAYLOAD, port=4711)
    run.sms("+4915112345678", TRACKER_TEXT)
    run.sms("+4915112345678", OPT_FULL)
    for device in ("PUMP01", "PUMP02", "WM-0042", "TRK7", "OPT1"):
        run.wait_device_state(device, 1)
    everything = ([field_uid("PUMP01", n) for n in PUMP01_EXPECT]
                  + [field_uid("WM-0042", n) for n in METER_EXPECT]
                  + [field_uid("TRK7", n) for n in TRACKER_EXPECT]
                  + [field_uid("OPT1", n) for n in OPT_EXPECT]
                  + [f"modemd_modem_imei_{IMEI}_signal"])
    # HA creates entities from discovery at once but subscribes their state and availability
    # topics only once its MQTT client is up: wait until they show values.
    run.wait_entities([*everything, f"modemd_{GW}_status"], timeout=90,
                      ready=lambda s: s.get("state") not in (None, "unknown", UNAVAILABLE))

    print("\nentities, units, device classes, devices", flush=True)
    run.check("gateway status entity", lambda: check_gateway(run))
    for device, expect in (("PUMP01", PUMP01_EXPECT), ("PUMP02", PUMP02_EXPECT),
                           ("WM-0042", METER_EXPECT), ("TRK7", TRACKER_EXPECT),
                           ("OPT1", OPT_EXPECT)):
        run.check(f"fields of {device}", functools.partial(compare_fields, run, device, expect))
        run.check(f"device block of {device}", functools.partial(check_device_block, run, device))
    run.check("HA accepts every unit/device_class of the configs",
              lambda: check_configs_accepted(run))
    run.check("device_tracker on the map (TRK7)", lambda: check_tracker(run))
    run.check("tracker state document as attributes", lambda: check_tracker_attributes(run))

    print("\nmodem health", flush=True)
    wait_for(lambda: run.modem_state().get("signal"), 30)
    time.sleep(6)  # one more health poll: the modem device's identity is known by then
    run.check("modem health sensors = modem state", lambda: check_modem_sensors(run))
    run.check("modem device manufacturer/model", lambda: check_modem_device(run))
    run.check("modem device firmware (sw_version)", lambda: check_modem_firmware(run))
    run.check("modem connectivity binary_sensor on", lambda: check_connectivity_on(run))
    run.check("modem last-error sensor", lambda: check_last_error(run))
    signal_before = (run.state_of(f"modemd_modem_imei_{IMEI}_signal") or {}).get("state")
    run.check("unplugged modem: no stale signal, connectivity off",
              lambda: check_unplugged(run, signal_before))
    run.check("replugged modem: health back", lambda: check_replugged(run))

    print("\noptional fields", flush=True)
    run.check("PUMP01 without optional enum ERR: no stale label, no template warning",
              lambda: check_optional(run, "PUMP01", "ID=PUMP01;BAT=3.65;T=21.0;P=2.3;RUN=1",
                                     kept=[], enums=["error"], changed=("battery", "3.65")))
    run.check("OPT1 without optional bool/enum: bool kept, no stale label, no warning",
              lambda: check_optional(run, "OPT1", "DEV=OPT1;V=1.6", kept=["door"],
                                     enums=["mode"], changed=("level", "1.6")))

    print("\nSMPP bind (receiver, against the test SMSC)", flush=True)
    run.wait_entities([uid for uid, _ in SMPP_ENTITIES.values()], timeout=30)
    run.check(f"SMPP bind device (SMPP {BIND}, via the gateway) and its three entities",
              lambda: check_smpp_device(run))
    run.check("SMPP bound: Connected on, Last error none, Reconnects 0",
              lambda: check_smpp_bound(run))
    run.check("SMSC dropped the connection: Connected off, Last error shown, Reconnects 1",
              lambda: check_smpp_dropped(run))
    run.check("SMPP rebound: Connected on, Last error none, Reconnects 1",
              lambda: check_smpp_rebound(run))

    print("\navailability", flush=True)
    entity_ids = modemd_entity_ids(run)
    run.check("modemd stopped (SIGTERM): entities unavailable",
              lambda: check_availability(run, signal.SIGTERM))
    run.check("modemd started: entities available",
              lambda: check_available_again(run, entity_ids))
    run.check("modemd killed (SIGKILL, Last Will): entities unavailable",
              lambda: check_availability(run, signal.SIGKILL))
    run.check("modemd restarted after the kill: entities available",
              lambda: check_available_again(run, entity_ids))

    print("\nremoval and expiry", flush=True)
    meter_uids = [field_uid("WM-0042", n) for n in METER_EXPECT]
    run.stop_modemd()
    run.write_modemd_config(meter=False, pressure=False, expire_after=args.expire_after)
    run.start_modemd()
    run.check("rule removed (water meter): entities and device gone",
              lambda: check_rule_removed(run, "WM-0042", meter_uids))
    run.check("removed device's retained state cleared",
              lambda: check_state_cleared(run, "WM-0042"))
    pressure = [field_uid(d, "pressure") for d in ("PUMP01", "PUMP02")]
    run.check("field removed (pressure): gone at restart without SMS",
              lambda: check_fields_removed_at_restart(run, pressure))
    run.check("field removed (pressure): gone after the next reading (PUMP02)",
              lambda: check_field_removed_after_reading(
                  run, "PUMP02", "+4916098765432", PUMP02_FULL.replace("BAT=3.80", "BAT=3.78"),
                  pressure[1]))
    # PUMP02 reports under the new, short expire_after; PUMP01's last reading came under the
    # old one (7200 s): a user who shortens expire_after expects it to count from then on.
    count = len(run.recorder.on(f"modemd/{GW}/device/PUMP02/state"))  # type: ignore[union-attr]
    run.sms("+4916098765432", PUMP02_FULL.replace("BAT=3.80", "BAT=3.79"))
    run.wait_device_state("PUMP02", count + 1)
    fresh = [field_uid("PUMP02", n) for n in ("battery", "temperature", "running", "error")]
    older = [field_uid("PUMP01", n) for n in ("battery", "temperature", "running", "error")]
    wait_for(lambda: (run.state_of(fresh[0]) or {}).get("state") == "3.79", 20)
    time.sleep(args.expire_after + 5)
    run.check(f"expire_after ({args.expire_after} s): silent device (PUMP02) unavailable",
              lambda: check_expired(run, fresh, args.expire_after))
    run.check("expire_after shortened in the config: older device (PUMP01) unavailable",
              lambda: check_expired(run, older, args.expire_after))
    try:
        run.restart_ha()
        time.sleep(10)  # retained state arrives within a second of HA's subscription
    except (HAError, OSError) as exc:
        print(f"Home Assistant restart failed: {exc}", flush=True)
    run.check("HA restarted: expired device (PUMP02) stays unavailable",
              lambda: check_still_expired(run, fresh))
    run.check("HA restarted: device expired by the shortened expire_after (PUMP01) stays "
              "unavailable", lambda: check_still_expired(run, older))

    print("\ndiscovery at every (re)connect", flush=True)
    configured = [u for u in run.registry() if u not in meter_uids
                  and u not in pressure]
    expected_configs = set(retained_snapshot(run, "homeassistant/#"))
    run.check("HA birth message: every entity announced without a new SMS",
              lambda: check_birth(run, configured))
    run.check("broker restarted empty: modemd re-announces every discovery config",
              lambda: check_broker_restart(run, expected_configs))
    run.check("HA restarted on the empty broker: every entity back without a new SMS",
              lambda: check_ha_after_broker_restart(run, configured))

    print("\nHome Assistant's log", flush=True)
    run.check("no MQTT/template warnings in home-assistant.log", lambda: check_log(run))
    run.check("no complaint about the SMPP entities in home-assistant.log",
              lambda: check_smpp_log(run))


def check_state_cleared(run: Run, device: str) -> str:
    retained = retained_snapshot(run, f"modemd/{GW}/device/{device}/state")
    if retained:
        raise Failed(f"modemd/{GW}/device/{device}/state is still retained on the broker",
                     payload=next(iter(retained.values())).decode(errors="replace"))
    return "no retained state left"


def print_table(run: Run) -> None:
    width = max(len(c.name) for c in run.checks)
    print(f"\nHome Assistant {run.ha_version}, modemd {modemd_version()}, "
          f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC")
    print(f"{'check':<{width}}  result")
    print(f"{'-' * width}  -----------")
    for c in run.checks:
        print(f"{c.name:<{width}}  {c.status}")
    counts = {s: sum(1 for c in run.checks if c.status == s) for s in (PASS, FAIL, NOT_PRESENT)}
    print(f"\n{counts[PASS]} passed, {counts[FAIL]} failed, {counts[NOT_PRESENT]} not present")


def modemd_version() -> str:
    from modemd import __version__
    return __version__


def git_revision() -> str:
    found = subprocess.run(["git", "-C", str(REPO), "describe", "--always", "--dirty"],
                           capture_output=True, text=True, check=False)
    return found.stdout.strip()


def user_arguments(argv: list[str]) -> list[str]:
    """*argv* without the --hass/--cache that scripts/interop-ha adds itself."""
    kept, skip = [], False
    for arg in argv:
        if skip:
            skip = False
        elif arg in ("--hass", "--cache"):
            skip = True
        elif not arg.startswith(("--hass=", "--cache=")):
            kept.append(arg)
    return kept


def write_results(run: Run, path: Path, setup_error: str | None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "home_assistant": run.ha_version,
        "modemd": modemd_version(),
        "git": git_revision(),
        "command": " ".join(["scripts/interop-ha", *user_arguments(sys.argv[1:])]),
        "run_dir": str(run.dir),
        "setup_error": setup_error,
        "checks": [asdict(c) for c in run.checks],
    }, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def markdown_table(checks: list[Check]) -> str:
    """The checks as a Markdown table (for docs/interop-ha.md)."""
    rows = ["| check | result | detail |", "|---|---|---|"]
    for c in checks:
        detail = c.detail.replace("|", "\\|")
        rows.append(f"| {c.name} | {c.status} | {detail[:220]} |")
    return "\n".join(rows) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hass", required=True, help="the hass executable of the HA venv")
    parser.add_argument("--cache", required=True, help="where runs and results are kept")
    parser.add_argument("--results", help="JSON results file (default: <cache>/results.json)")
    parser.add_argument("--expire-after", type=int, default=30,
                        help="expire_after for the pump rule in the expiry check (seconds)")
    args = parser.parse_args()
    results = Path(args.results) if args.results else Path(args.cache) / "results.json"

    def interrupted(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt
    signal.signal(signal.SIGTERM, interrupted)
    run = Run(args)
    setup_error = None
    try:
        run.setup()
        scenario(run)
    except KeyboardInterrupt:
        setup_error = "interrupted"
        print("\ninterrupted: stopping everything", file=sys.stderr)
    except (HAError, RuntimeError, OSError) as exc:
        setup_error = f"{type(exc).__name__}: {exc}"
        print(f"\ninterop-ha: the run could not go on: {setup_error}", file=sys.stderr)
    finally:
        run.close()
    if run.checks:
        print_table(run)
    write_results(run, results, setup_error)
    (run.dir / "results.md").write_text(markdown_table(run.checks), encoding="utf-8")
    print(f"results: {results}\nlogs: {run.dir}")
    if setup_error is not None:
        return 2
    return 1 if any(c.status == FAIL for c in run.checks) else 0


if __name__ == "__main__":
    sys.exit(main())
