"""modemd against a real Home Assistant: entities, values, availability, health, removal.

Run by scripts/interop-ha (outside CI: it installs Home Assistant). Starts a mosquitto and a
Home Assistant (``--hass``, its own venv) on free ports of 127.0.0.1, onboards an owner
through the API, creates the MQTT integration through its config flow, then runs modemd's
daemon on a simulated modem and checks, through Home Assistant's REST API and its log:

1. every configured device's entities exist before any SMS (discovery at connect);
2. a reading's values, units and device classes; a reading without optional fields changes
   nothing and logs no template warning; the tracker has a position;
3. the modem's connectivity sensor is on, its device has manufacturer/model/firmware, and
   when the modem is unplugged it goes off and signal/registration become unknown;
4. stopping modemd makes every entity unavailable (Last Will / offline);
5. a device removed from the config loses its entities.

Prints one line per check and exits non-zero if any failed.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from modemd.daemon import Daemon  # noqa: E402
from modemd.simulator import SimulatedModem  # noqa: E402
from modemd.sms.encode import encode_deliver  # noqa: E402
from tests.helpers import load, write_config  # noqa: E402
from tests.mosquitto import Mosquitto, free_port  # noqa: E402

GW = "interop"
RULES = (REPO / "config" / "devices-pump.toml").read_text(encoding="utf-8") + (
    REPO / "config" / "devices-tracker.toml").read_text(encoding="utf-8")
BEACON_RULE = """
[[parser]]
name = "beacon"
match = { text = "^V=" }
format = "kv"
device = "BEACON"
expire_after = 15
[parser.fields]
V = { name = "voltage", type = "float", unit = "V", device_class = "voltage" }
"""
RULES += BEACON_RULE
RESULTS: list[tuple[bool, str]] = []


def check(ok: bool, what: str) -> None:
    RESULTS.append((ok, what))
    print(("PASS " if ok else "FAIL ") + what, flush=True)


def wait(condition: Callable[[], Any], timeout: float, interval: float = 1.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        try:
            value = condition()
        except (OSError, KeyError, ValueError):
            value = None
        if value or time.monotonic() > deadline:
            return value
        time.sleep(interval)


class HomeAssistant:
    def __init__(self, hass: str, workdir: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.config_dir = workdir / "ha"
        self.config_dir.mkdir(parents=True)
        (self.config_dir / "configuration.yaml").write_text(
            "homeassistant:\n  name: interop\n  unit_system: metric\n  time_zone: UTC\n"
            "  latitude: 52.5\n  longitude: 13.4\n  elevation: 30\n  country: DE\n"
            f"http:\n  server_host: 127.0.0.1\n  server_port: {self.port}\n"
            "api:\nauth:\nonboarding:\nconfig:\n"
            "logger:\n  default: warning\n")
        self.log = self.config_dir / "home-assistant.log"
        self.hass = hass
        self.proc = self._spawn()
        self.token = ""
        self.version = ""

    def request(self, method: str, path: str, body: Any = None, *, form: bool = False) -> Any:
        data = None
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        if body is not None:
            if form:
                data = "&".join(f"{k}={v}" for k, v in body.items()).encode()
                headers["Content-Type"] = "application/x-www-form-urlencoded"
            else:
                data = json.dumps(body).encode()
                headers["Content-Type"] = "application/json"
        req = urllib.request.Request(self.url + path, data=data, headers=headers, method=method)
        with urllib.request.urlopen(req, timeout=30) as response:
            text = response.read().decode()
        try:
            return json.loads(text) if text else None
        except ValueError:
            return text  # /api/template answers plain text

    def onboard(self) -> None:
        client = self.url + "/"
        wait(lambda: self.request("GET", "/api/onboarding"), 600, 2.0)
        answer = self.request("POST", "/api/onboarding/users", {
            "client_id": client, "name": "Interop", "username": "interop",
            "password": "interop-check-only", "language": "en"})
        tokens = self.request("POST", "/auth/token", {
            "grant_type": "authorization_code", "code": answer["auth_code"],
            "client_id": client}, form=True)
        self.token = tokens["access_token"]
        self.version = self.request("GET", "/api/config")["version"]

    def add_mqtt(self, broker_port: int) -> None:
        flow = self.request("POST", "/api/config/config_entries/flow", {"handler": "mqtt"})
        result = self.request("POST", f"/api/config/config_entries/flow/{flow['flow_id']}",
                              {"broker": "127.0.0.1", "port": broker_port})
        if result.get("type") != "create_entry":
            raise RuntimeError(f"MQTT config flow did not finish: {result}")

    def states(self) -> dict[str, dict[str, Any]]:
        return {s["entity_id"]: s for s in self.request("GET", "/api/states")}

    def log_text(self) -> str:
        try:
            return self.log.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""

    def _spawn(self) -> subprocess.Popen[bytes]:
        return subprocess.Popen([self.hass, "-c", str(self.config_dir)],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def restart(self) -> None:
        self.stop()
        self.proc = self._spawn()
        wait(lambda: self.request("GET", "/api/config"), 600, 2.0)

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(60)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def entity(states: dict[str, dict[str, Any]], suffix: str) -> dict[str, Any] | None:
    return next((s for eid, s in states.items() if eid.endswith(suffix)), None)


def run_daemon(workdir: Path, sim: SimulatedModem, broker: Mosquitto, rules: str) -> Daemon:
    cfg = write_config(workdir / "modemd.toml", state_dir=workdir / "state",
                       modems=[{"name": "m1", "port": sim.port}],
                       gateway={"id": GW, "health_interval": 2},
                       mqtt={"host": "127.0.0.1", "port": broker.port, "homeassistant": True},
                       extra="\n" + rules)
    text = cfg.read_text().replace('id = "gw1"\n', "", 1)
    cfg.write_text(text)
    daemon = Daemon(load(cfg))
    daemon.start()
    return daemon


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--hass", required=True, help="the hass executable of a venv")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="modemd-interop-ha-"))
    broker = Mosquitto(work / "mosquitto").start()
    ha = HomeAssistant(args.hass, work)
    sim = SimulatedModem(profile="quectel_ec25")
    sim.start()
    sim.set_signal(20, 0)  # -73 dBm
    daemon = None
    try:
        ha.onboard()
        print(f"Home Assistant {ha.version} on {ha.url}, mosquitto on {broker.port}", flush=True)
        ha.add_mqtt(broker.port)
        daemon = run_daemon(work, sim, broker, RULES)

        # 1. discovery at connect, before any SMS
        found = wait(lambda: entity(ha.states(), "pump02_battery"), 120)
        check(found is not None, "configured device PUMP02 has entities before any SMS")

        # 2. values, units, optional fields, tracker
        scts = datetime(2026, 11, 25, 8, 0, tzinfo=UTC)
        sim.deliver(encode_deliver(sender="+4915112345678", scts=scts,
                                   text="ID=PUMP01;BAT=3.71;T=21.5;P=2.4;RUN=1;ERR=2"))
        battery = wait(lambda: (s := entity(ha.states(), "pump01_battery")) and
                       s["state"] == "3.71" and s, 60)
        check(bool(battery) and battery["attributes"].get("unit_of_measurement") == "V",
              f"PUMP01 battery 3.71 V: {battery and battery['state']}")
        error = wait(lambda: (s := entity(ha.states(), "pump01_error")) and
                     s["state"] == "overcurrent" and s, 30)
        check(bool(error), "enum sensor shows the label 'overcurrent'")
        before_log = len(ha.log_text())
        sim.deliver(encode_deliver(sender="+4915112345678", scts=scts.replace(hour=9),
                                   text="ID=PUMP01;BAT=3.69;T=21.0;P=2.3;RUN=1"))
        wait(lambda: entity(ha.states(), "pump01_battery")["state"] == "3.69", 60)
        states = ha.states()
        running = entity(states, "pump01_running")
        check(bool(running) and running["state"] == "on",
              f"binary sensor left on without RUN change: {running and running['state']}")
        err = entity(states, "pump01_error")
        check(bool(err) and err["state"] == "unknown",
              f"enum without ERR is unknown, not a stale label: {err and err['state']}")
        time.sleep(2)
        new_log = ha.log_text()[before_log:]
        warned = [line for line in new_log.splitlines()
                  if "Template variable" in line or "Ignoring invalid option" in line
                  or "No matching payload" in line]
        check(not warned, f"no template warnings in Home Assistant's log ({len(warned)})")
        sim.deliver(encode_deliver(sender="+4917000000007", scts=scts,
                                   text="TRK7,52.5200,13.4050,34.2,87,1"))
        tracker = wait(lambda: (s := entity(ha.states(), "trk7_location")) and
                       s["attributes"].get("latitude") and s, 60)
        check(bool(tracker) and tracker["attributes"].get("longitude") == 13.405,
              "device_tracker TRK7 has latitude/longitude")

        # 2b. a dead device stays dead when Home Assistant restarts (MQTT 5 message expiry)
        sim.deliver(encode_deliver(sender="+4915100000099", scts=scts, text="V=3.3"))
        beacon = wait(lambda: entity(ha.states(), "beacon_voltage")["state"] == "3.3", 60)
        check(bool(beacon), "BEACON voltage 3.3 V (expire_after 15 s)")
        ha.stop()
        time.sleep(20)  # the beacon's expire_after passes while Home Assistant is down
        ha.restart()
        time.sleep(15)  # MQTT reconnects, birth message, discovery again
        after = entity(ha.states(), "beacon_voltage")
        check(bool(after) and after["state"] in ("unavailable", "unknown"),
              f"after a Home Assistant restart the expired BEACON is not alive: "
              f"{after and after['state']}")

        # 3. modem health
        online = wait(lambda: (s := entity(ha.states(), "modem_m1_online")) and
                      s["state"] == "on" and s, 60)
        check(bool(online), "modem connectivity sensor on")
        signal = entity(ha.states(), "modem_m1_signal")
        check(bool(signal) and signal["state"] == "-73",
              f"signal -73 dBm: {signal and signal['state']}")
        devices = ha.request("POST", "/api/template", {
            "template": "{{ device_attr(device_id('" + (online or {}).get("entity_id", "") +
                        "'), 'manufacturer') }}|{{ device_attr(device_id('" +
                        (online or {}).get("entity_id", "") + "'), 'sw_version') }}"})
        check(isinstance(devices, str) and "None" not in devices and "|" in devices,
              f"modem device manufacturer|firmware: {devices}")
        sim.vanish()
        off = wait(lambda: (s := entity(ha.states(), "modem_m1_online")) and
                   s["state"] == "off" and s, 90)
        check(bool(off), "modem unplugged: connectivity off")
        states = ha.states()
        check(entity(states, "modem_m1_signal")["state"] == "unknown" and
              entity(states, "modem_m1_registration")["state"] == "unknown",
              "unplugged modem: signal and registration unknown")

        # 4. availability
        daemon.stop()
        daemon = None
        gone = wait(lambda: entity(ha.states(), "pump01_battery")["state"] == "unavailable", 60)
        check(bool(gone), "modemd stopped: entities unavailable")

        # 5. removal: the tracker rule is gone from the config
        daemon = run_daemon(work, sim, broker,
                            (REPO / "config" / "devices-pump.toml").read_text(encoding="utf-8"))
        removed = wait(lambda: entity(ha.states(), "trk7_location") is None and
                       entity(ha.states(), "trk7_battery") is None, 90)
        check(bool(removed), "removed rule: TRK7 entities gone from Home Assistant")
    finally:
        if daemon is not None:
            daemon.stop()
        sim.stop()
        ha.stop()
        broker.stop()
    failed = [what for ok, what in RESULTS if not ok]
    print(f"Home Assistant {ha.version}: {len(RESULTS) - len(failed)}/{len(RESULTS)} checks "
          f"passed; work dir {work}", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
