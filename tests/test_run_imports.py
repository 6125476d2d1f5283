"""What a running `modemd run` has imported: the resident daemon loads the code of the
features its config turns on, not of every feature (issue 18: memory).

Each case is a real daemon process (modemd.launch.main, as the `modemd` entry point runs it)
that writes its ``sys.modules`` to a file once it logs "modemd started", then stops on SIGTERM.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.helpers import REPO, run_python, write_config
from tests.mosquitto import free_port

#: the daemon, with a handler on its own logger (run_daemon resets only the root's) that
#: writes the modules once the daemon has started and then stops it as systemd would
_PROBE = """
import json, logging, os, signal, sys, threading
from modemd.launch import main

started = threading.Event()
report_to = sys.argv[2]

class Started(logging.Handler):
    def emit(self, record):
        if record.getMessage().startswith("modemd started"):
            started.set()

def report():
    if started.wait(30):
        with open(report_to, "w") as out:
            json.dump(sorted(sys.modules), out)
    os.kill(os.getpid(), signal.SIGTERM)

logging.getLogger("modemd.daemon").addHandler(Started())
threading.Thread(target=report, daemon=True).start()
sys.argv = ["modemd", "run", "-c", sys.argv[1], "--log-level", "INFO"]
main()
"""

#: loaded only when the config asks for what they do
_OPTIONAL = {
    "SMPP": ("smpplib", "six", "modemd.sources.smpp", "modemd.store.committer",
             "concurrent.futures"),
    # (modemd.verify.store: the migration of a new store makes its tables)
    "verify": ("modemd.verify.service", "modemd.verify.codes"),
    "InfluxDB": ("modemd.sinks.influx",),
    "Home Assistant discovery": ("modemd.payload.discovery",),
    "the CLI": ("typer", "click", "modemd.cli"),
    "number plans and the regex engine": ("phonenumbers", "regex"),
    # paho imports urllib.request for proxy settings; modemd.sinks defers it to its first use
    "urllib.request run (http.client, email)": ("http.client", "email"),
}

#: never in the daemon, whatever it runs: the config is validated in a child process and the
#: daemon runs on plain views of it (pydantic and the models are about 14 MiB)
_VALIDATION = ("pydantic", "pydantic_core", "modemd.config", "modemd.payload.config",
               "modemd.config_checks")


def modules_of_run(tmp_path: Path, extra: str = "") -> set[str]:
    config = write_config(tmp_path / "modemd.toml", state_dir=tmp_path / "state",
                          modems=[{"name": "m1", "port": str(tmp_path / "no-such-port")}],
                          mqtt={"host": "127.0.0.1", "port": free_port()}, extra=extra)
    report = tmp_path / "modules.json"
    done = run_python(_PROBE, str(config), str(report), timeout=120)
    output = done.stdout + done.stderr
    assert report.exists(), f"the daemon did not start (exit {done.returncode}):\n{output[-3000:]}"
    assert "Traceback" not in output, output[-3000:]
    return set(json.loads(report.read_text()))


def loaded(modules: set[str], prefix: str) -> bool:
    return any(name == prefix or name.startswith(prefix + ".") for name in modules)


def test_one_modem_and_mqtt_load_no_code_of_features_not_configured(tmp_path: Path) -> None:
    modules = modules_of_run(tmp_path)
    assert {"modemd.daemon", "modemd.sinks.mqtt", "paho.mqtt.client"} <= modules
    unwanted = {feature: [p for p in prefixes if loaded(modules, p)]
                for feature, prefixes in _OPTIONAL.items()}
    assert not {feature: found for feature, found in unwanted.items() if found}
    assert not [prefix for prefix in _VALIDATION if loaded(modules, prefix)]


@pytest.mark.parametrize(("extra", "feature"), [
    ('\n[[smpp]]\nname = "agg"\nhost = "127.0.0.1"\nport = 9\nsystem_id = "gw"\n', "SMPP"),
    ("\n[verify]\nenabled = true\n", "verify"),
])
def test_a_feature_configured_loads_its_code(tmp_path: Path, extra: str, feature: str) -> None:
    modules = modules_of_run(tmp_path, extra)
    assert all(loaded(modules, prefix) for prefix in _OPTIONAL[feature]
               if prefix != "six" or loaded(modules, "smpplib")), sorted(modules)
    assert not [prefix for prefix in _VALIDATION if loaded(modules, prefix)]


def test_every_feature_at_once_runs_without_the_validation_library(tmp_path: Path) -> None:
    """Parser rules of each kind, the device registry, InfluxDB, verify, sending over a
    transceiver: the daemon still runs on the plain views of its config."""
    rules = "".join((REPO / "config" / name).read_text(encoding="utf-8")
                    for name in ("devices-pump.toml", "devices-tracker.toml",
                                 "devices-watermeter.toml"))
    extra = (
        '\n[influx]\nurl = "http://127.0.0.1:9"\norg = "o"\nbucket = "b"\n'
        "\n[verify]\nenabled = true\n"
        '\n[send]\nenabled = true\nallowed_destinations = ["+49*"]\nmodem = "agg"\n'
        '\n[[smpp]]\nname = "agg"\nhost = "127.0.0.1"\nport = 9\nsystem_id = "gw"\n'
        'bind = "transceiver"\n\n' + rules)
    modules = modules_of_run(tmp_path, extra)
    assert {"modemd.payload.engine", "modemd.sinks.influx", "modemd.send.smpp"} <= modules
    assert not [prefix for prefix in _VALIDATION if loaded(modules, prefix)]


_FIRST_USE = """
import sys, threading
import modemd.sinks
import paho.mqtt.client
assert "http.client" not in sys.modules, "urllib.request ran at import"
import urllib.request
found = []
threads = [threading.Thread(target=lambda: found.append(urllib.request.getproxies))
           for _ in range(8)]
for thread in threads:
    thread.start()
for thread in threads:
    thread.join()
real = sys.modules["urllib.request"]
assert all(f is real.getproxies for f in found), found
assert urllib.request is real and "http.client" in sys.modules
from urllib.request import Request
assert Request is real.Request
print("ok")
"""


def test_urllib_request_runs_on_its_first_use_and_is_then_the_real_module() -> None:
    done = run_python(_FIRST_USE)
    assert done.stdout.strip() == "ok", done.stdout + done.stderr
