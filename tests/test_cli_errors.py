"""Bad invocations as a user types them: each is a real `python -m modemd` process that must
end with a clear message, the documented exit code (docs/contracts.md: 0 done, 1 a runtime
failure, 2 a usage or configuration error, 3 refused) and never a Python traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.helpers import REPO

MODEM = '[[modem]]\nname = "m1"\nport = "/dev/null"\n'


@dataclass(frozen=True)
class Case:
    args: tuple[str, ...]
    code: int
    says: str  # a piece of the message (case-insensitive)


def write(directory: Path, name: str, text: str | bytes) -> str:
    path = directory / name
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    return str(path)


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    d = tmp_path_factory.mktemp("cli-errors")
    state = d / "state"
    (d / "a-file").write_text("not a directory")
    corrupt = d / "corrupt"
    corrupt.mkdir()
    (corrupt / "modemd.sqlite3").write_bytes(b"this is not an SQLite database" * 40)
    clash = """
[[parser]]
name = "a"
format = "kv"
match = { sender = "+49151*" }
device_field = "ID"
fields = { ID = { name = "id", type = "string" }, L = { name = "level", type = "float" } }

[[parser]]
name = "b"
format = "kv"
match = { sender = "+49160*" }
device_field = "ID"
fields = { ID = { name = "id", type = "string" }, L = { name = "level", type = "string" } }
"""
    good = f'[gateway]\nstate_dir = "{state}"\n' + MODEM
    return {
        "dir": str(d),
        "good": write(d, "good.toml", good),
        "latin1": write(d, "latin1.toml", b'[gateway]\nid = "caf\xe9"\n' + MODEM.encode()),
        "syntax": write(d, "syntax.toml", "[gateway\nid = 1\n"),
        "typo": write(d, "typo.toml", MODEM + "bauddrate = 9600\n"),
        "empty": write(d, "empty.toml", ""),
        "no_modem": write(d, "no-modem.toml", '[gateway]\nid = "gw"\n'),
        "timeout0": write(d, "timeout0.toml", MODEM + "command_timeout = 0\n"),
        "sweep0": write(d, "sweep0.toml", "[gateway]\nsweep_interval = 0\n" + MODEM),
        "health0": write(d, "health0.toml", '[gateway]\nhealth_interval = "0s"\n' + MODEM),
        "bucket": write(d, "bucket.toml",
                        MODEM + '[influx]\nurl = "http://127.0.0.1:8428"\nbucket = ""\n'),
        "host": write(d, "host.toml", MODEM + '[mqtt]\nhost = ""\n'),
        "one_port": write(d, "one-port.toml",
                          MODEM + '[[modem]]\nname = "m2"\nport = "/dev/null"\n'),
        "clash": write(d, "clash.toml", MODEM + clash),
        "dollar": write(d, "dollar.toml", MODEM + '[mqtt]\nbase_topic = "$SYS/modemd"\n'),
        "hash": write(d, "hash.toml", MODEM + '[mqtt]\nbase_topic = "modemd/#"\n'),
        "port": write(d, "port.toml", MODEM + "[mqtt]\nport = 70000\n"),
        "baud": write(d, "baud.toml", MODEM + "baudrate = 12345\n"),
        "cc": write(d, "cc.toml", '[gateway]\ndefault_country_code = "999"\n' + MODEM),
        "url_port": write(d, "url-port.toml", MODEM + '[influx]\nurl = "http://h:99999"\n'
                                                      'bucket = "b"\n'),
        "empty_port": write(d, "empty-port.toml", '[[modem]]\nname = "m1"\nport = ""\n'),
        "bad_state": write(d, "bad-state.toml",
                           f'[gateway]\nstate_dir = "{d / "a-file" / "state"}"\n' + MODEM),
        "ro_state": write(d, "ro-state.toml", '[gateway]\nstate_dir = "/proc/self"\n' + MODEM),
        "corrupt": write(d, "corrupt.toml", f'[gateway]\nstate_dir = "{corrupt}"\n' + MODEM),
    }


def cases(f: dict[str, str]) -> list[Case]:
    d = f["dir"]
    return [
        # configuration files
        Case(("config", "check", f["latin1"]), 2, "not UTF-8"),
        Case(("run", "-c", f["latin1"]), 2, "not UTF-8"),
        Case(("config", "show", "-c", f["latin1"]), 2, "not UTF-8"),
        Case(("config", "check", f["syntax"]), 2, "(syntax)"),
        Case(("config", "check", f["typo"]), 2, "unknown key"),
        Case(("config", "check", f"{d}/missing.toml"), 2, "No such file"),
        Case(("config", "check", d), 2, "directory"),
        Case(("run", "-c", f"{d}/missing.toml"), 2, "missing.toml"),
        Case(("config", "check", f["empty"]), 2, "no [[modem]]"),
        Case(("config", "check", f["no_modem"]), 2, "no [[modem]]"),
        Case(("config", "check", f["timeout0"]), 2, "command_timeout"),
        Case(("config", "check", f["sweep0"]), 2, "sweep_interval"),
        Case(("config", "check", f["health0"]), 2, "health_interval"),
        Case(("config", "check", f["bucket"]), 2, "influx.bucket"),
        Case(("config", "check", f["host"]), 2, "mqtt.host"),
        Case(("config", "check", f["one_port"]), 2, "also the port of modem 'm1'"),
        Case(("config", "check", f["clash"]), 2, "one type"),
        Case(("config", "check", f["dollar"]), 2, "belong to the broker"),
        Case(("config", "check", f["hash"]), 2, "not a valid topic"),
        Case(("config", "check", f["port"]), 2, "mqtt.port"),
        Case(("config", "check", f["baud"]), 2, "baud rate"),
        Case(("config", "check", f["cc"]), 2, "not a country calling code"),
        Case(("run", "-c", f["cc"]), 2, "not a country calling code"),
        Case(("config", "check", f["url_port"]), 2, "1-65535"),
        Case(("config", "check", f["empty_port"]), 2, "must not be empty"),
        # the state directory
        Case(("run", "-c", f["bad_state"]), 1, "cannot start"),
        Case(("run", "-c", f["ro_state"]), 1, "cannot start"),
        Case(("messages", "-c", f["bad_state"]), 1, "cannot open the store"),
        Case(("outbox", "-c", f["bad_state"]), 1, "cannot open the store"),
        Case(("messages", "-c", f["ro_state"]), 1, "cannot open the store"),
        Case(("messages", "-c", f["corrupt"]), 1, "store"),
        Case(("messages", "-c", f["good"], "--limit", "0"), 2, "--limit"),
        # config init
        Case(("config", "init", "--no-scan", "-o", f"{d}/no-such-dir/modemd.toml"), 2,
             "does not exist"),
        Case(("config", "init", "--no-scan", "-o", f["good"]), 1, "exists"),
        Case(("config", "init", "--no-scan", "-o", f"{d}/a-file/x.toml"), 2, "does not exist"),
        # codec and payload
        Case(("pdu", "decode", "0791ABC"), 1, "cannot decode"),
        Case(("pdu", "decode", "--lenient", "0791ABC"), 1, "cannot decode"),
        Case(("pdu", "decode", "zz-not-hex"), 1, "cannot decode"),
        Case(("pdu", "decode", ""), 1, "cannot decode"),
        Case(("parse", "--hex", "ZZ", "--sender", "+4915112345678", "-c", f["good"]), 2,
             "not a hex digit"),
        Case(("parse", "--hex", "ABC", "--sender", "+4915112345678", "-c", f["good"]), 2,
             "odd number of hex digits"),
        Case(("parse", "x", "--sender", "1", "--port", "70000", "-c", f["good"]), 2, "--port"),
        Case(("parse", "x", "--sender", "1", "-c", f"{d}/missing.toml"), 2, "missing.toml"),
        Case(("parse", "x", "-c", f["good"]), 2, "--sender"),
        # field work
        Case(("probe", "/dev/null", "--pin-file", f"{d}/no-pin"), 2, "no-pin"),
        Case(("probe", "/dev/null", "--baudrate", "12345"), 2, "baud rate"),
        Case(("probe", "/dev/null", "--timeout", "-1"), 2, "--timeout"),
        Case(("probe", "/dev/does-not-exist"), 1, "does not exist"),
        Case(("at", "/dev/does-not-exist", "AT"), 2, "no such device"),
        Case(("at", "/dev/null", "AT", "--baudrate", "0"), 2, "baud rate"),
        Case(("at", "/dev/null", "AT", "--timeout", "0"), 2, "--timeout"),
        Case(("at", "/dev/null", "AT", "--timeout", "nan"), 2, "--timeout"),
        Case(("at", "/dev/null", "AT+CMGD=1,4"), 3, "refused"),
        # simulator and demo
        Case(("simulate", "--profile", "no-such-modem"), 2, "unknown simulator profile"),
        Case(("simulate", "--link", f"{d}/no-such-parent/modem"), 2, "does not exist"),
        Case(("simulate", "--imei", "12ab"), 2, "IMEI"),
        Case(("demo", "--duration", "-1"), 2, "--duration"),
        Case(("demo", "--interval", "0"), 2, "--interval"),
        Case(("demo", "--mqtt-port", "70000"), 2, "TCP port"),
        Case(("demo", "--mqtt-port", "0"), 2, "TCP port"),
        Case(("demo", "--state-dir", "/proc/no-such-dir/state", "--duration", "1"), 2,
             "--state-dir"),
        Case(("at", "/dev/null", ""), 2, "no command given"),
        Case(("probe", "/dev/null", "--pin-file", d), 2, "directory"),
        Case(("config", "init", "--no-scan", "--force", "-o", "/dev/full"), 1,
             "cannot write /dev/full"),
        Case(("config", "check", "/dev/null"), 2, "no [[modem]]"),
        Case(("messages", "-c", f["good"], "--limit", "-5"), 2, "--limit"),
        # the command line itself
        Case(("no-such-verb",), 2, "No such command"),
        Case(("config", "check", "--no-such-option"), 2, "No such option"),
    ]


def run_modemd(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COLUMNS": "200", "MODEMD_CONFIG": "/nonexistent/modemd.toml"}
    env.pop("MODEMD_DEBUG", None)
    return subprocess.run([sys.executable, "-m", "modemd", *args], cwd=REPO, env=env,
                          check=False, capture_output=True, text=True, timeout=60,
                          stdin=subprocess.DEVNULL)


def test_every_bad_invocation_ends_clearly(files: dict[str, str]) -> None:
    failures = []
    for case in cases(files):
        proc = run_modemd(*case.args)
        output = proc.stdout + proc.stderr
        problems = []
        if proc.returncode != case.code:
            problems.append(f"exit {proc.returncode}, documented {case.code}")
        if case.says.lower() not in output.lower():
            problems.append(f"no {case.says!r} in the message")
        if "Traceback" in output or 'File "' in output:
            problems.append("a traceback")
        if problems:
            failures.append(f"modemd {' '.join(case.args)}: {'; '.join(problems)}\n"
                            f"    {output.strip()[-600:]!r}")
    assert not failures, "\n".join(failures)
    # none of them created what it was refused for
    assert not Path(files["dir"], "no-such-parent").exists()
    assert not Path(files["dir"], "no-such-dir").exists()


def test_the_last_resort_handler_prints_one_line_and_details_only_with_debug() -> None:
    code = ("import sys; from modemd.cli_support import run_guarded\n"
            "def broken():\n    raise RuntimeError('something nobody expected')\n"
            "run_guarded(broken, sys.argv[1:])\n")
    plain = subprocess.run([sys.executable, "-c", code], check=False, capture_output=True,
                           text=True, timeout=60, cwd=REPO)
    assert plain.returncode == 1
    assert "Traceback" not in plain.stderr
    assert plain.stderr.splitlines()[0] == (
        "modemd: unexpected error (RuntimeError): something nobody expected")
    assert "--debug" in plain.stderr
    debug = subprocess.run([sys.executable, "-c", code, "--debug"], check=False,
                           capture_output=True, text=True, timeout=60, cwd=REPO)
    assert debug.returncode == 1
    assert "Traceback" in debug.stderr and "something nobody expected" in debug.stderr


def test_config_check_passes_a_good_config(files: dict[str, str]) -> None:
    proc = run_modemd("config", "check", files["good"])
    assert proc.returncode == 0, proc.stderr
    assert "OK (1 modem(s)" in proc.stdout
