"""Where `modemd run`'s resident memory goes: VmRSS after each step of its start, in one process.

The steps are those of modemd/launch.py's run_daemon, the libraries first (each step loads
only what the ones before did not), then the config read (validated by pydantic in a forked
child, which this process never loads) and the daemon built (not started: bench_floor.py
measures a running one). Figures are MiB, as /proc/self/status says.

    .venv/bin/python benchmarks/rss_steps.py [-c CONFIG]

Without -c the config is one modem and MQTT, as bench_floor.py runs it. PYTHONDONTWRITEBYTECODE
(set in some shells and CI) makes every start compile modemd from source, which leaves more
memory behind than loading the .pyc files an installed modemd has; bench_floor.py runs both
programs with bytecode caches.
"""

from __future__ import annotations


def rss_mib() -> float:
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


START = rss_mib()  # before this script's own imports (argparse, tempfile, pathlib)

import argparse  # noqa: E402
import importlib  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
from collections.abc import Callable  # noqa: E402
from pathlib import Path  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

_ONE_MODEM = """
[gateway]
id = "gw1"
state_dir = "{state}"

[[modem]]
name = "m1"
port = "/dev/ttyUSB-none"

[mqtt]
host = "127.0.0.1"
"""


def imports(*names: str) -> Callable[[], object]:
    return lambda: [importlib.import_module(name) for name in names]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-c", "--config", type=Path)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="modemd-rss-") as tmp:
        config = args.config
        if config is None:
            config = Path(tmp) / "modemd.toml"
            config.write_text(_ONE_MODEM.format(state=Path(tmp) / "state"), encoding="utf-8")
        built: dict[str, object] = {}

        def load() -> None:
            from modemd.config_view import read_config_apart

            built["config"], _ = read_config_apart(config)

        def daemon() -> None:
            from modemd.daemon import Daemon
            from modemd.launch import _find_port

            built["daemon"] = Daemon(built["config"],  # type: ignore[arg-type]
                                     port_resolver=_find_port)

        steps: list[tuple[str, Callable[[], object]]] = [
            ("paho-mqtt (with ssl, OpenSSL; urllib.request deferred by modemd.sinks)",
             imports("modemd.sinks", "paho.mqtt.client")),
            ("pyserial, sqlite3, json", imports("serial", "sqlite3", "json")),
            ("modemd.launch, modemd.config_view", imports("modemd.launch", "modemd.config_view")),
            ("the config validated in a child (pydantic there), its views here", load),
            ("modemd.daemon and what it imports: driver, AT, codec, store, pipeline, sinks",
             imports("modemd.cli_support", "modemd.daemon",
                     "modemd.modem.modemmanager",
                     "modemd.store.migrations")),
            ("the Daemon built (not started)", daemon),
        ]
        print(f"{'Python itself':78s} {START:5.1f}")
        print(f"{'+ this script (argparse, tempfile, pathlib: modemd.launch loads the last)':78s}"
              f" {rss_mib() - START:+5.1f}")
        before = rss_mib()
        for label, step in steps:
            step()
            now = rss_mib()
            print(f"{'+ ' + label:78s} {now - before:+5.1f}")
            before = now
        print(f"{'total':78s} {before:5.1f}  ({len(sys.modules)} modules)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
