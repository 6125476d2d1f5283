"""The config file: every problem reported at once with its key path; secrets never shown."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from typer.testing import CliRunner

from modemd.cli import app
from modemd.config import load_config, parse_duration
from modemd.errors import ConfigError

GOOD = """
[gateway]
id = "pi-north"
state_dir = "/tmp/modemd-test"
sweep_interval = "2m"

[[modem]]
name = "quectel"
port = "/dev/serial/by-id/usb-Quectel_EC25-if02-port0"
pin_file = "sim-pin"

[mqtt]
host = "broker.local"
password_file = "mqtt-password"
username = "modemd"

[outbox]
max_age = "7d"
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "modemd.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_a_good_file_loads_with_defaults(tmp_path: Path) -> None:
    cfg = load_config(write(tmp_path, GOOD))
    assert cfg.gateway.id == "pi-north"
    assert cfg.gateway.sweep_interval == 120.0
    assert cfg.outbox.max_age == 7 * 86400
    assert cfg.modem[0].baudrate == 115200 and cfg.modem[0].profile == "auto"
    assert cfg.mqtt is not None and cfg.mqtt.qos == 1 and cfg.mqtt.base_topic == "modemd"
    assert cfg.influx is None


def test_every_error_is_reported_at_once_with_its_key_path(tmp_path: Path) -> None:
    bad = GOOD.replace('host = "broker.local"', 'host = "broker.local"\nprot = 1883') \
              .replace('name = "quectel"', 'name = "que/ctel"\nbaudrate = 115201')
    with pytest.raises(ConfigError) as caught:
        load_config(write(tmp_path, bad))
    problems = dict(caught.value.problems)
    assert problems["mqtt.prot"] == "unknown key (a typo?)"
    # List entries are named by their name, so the engineer finds the right [[modem]].
    assert "topic level" in problems["modem['que/ctel'].name"]
    assert "standard modem baud rate" in problems["modem['que/ctel'].baudrate"]
    assert len(caught.value.problems) == 3


def test_a_syntax_error_names_the_line(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(write(tmp_path, "[gateway\nid = 1\n"))
    assert caught.value.problems[0][0] == "(syntax)"
    assert "line 1" in caught.value.problems[0][1]


def test_secrets_come_from_credentials_directory_and_are_never_shown(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    creds = tmp_path / "creds"
    creds.mkdir()
    (creds / "mqtt-password").write_text("s3cret-pw\n")
    (creds / "sim-pin").write_text("4711\n")
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(creds))
    path = write(tmp_path, GOOD)
    cfg = load_config(path)
    assert cfg.mqtt is not None
    password = cfg.mqtt.password()
    assert password is not None and password.get_secret_value() == "s3cret-pw"
    assert cfg.modem[0].resolved_pin() == "4711"
    result = CliRunner().invoke(app, ["config", "show", "-c", str(path)])
    assert result.exit_code == 0
    assert "s3cret-pw" not in result.output and "4711" not in result.output
    shown = json.loads(result.output)
    assert shown["gateway"]["id"] == "pi-north"


def test_config_check_exit_codes(tmp_path: Path) -> None:
    runner = CliRunner()
    ok = runner.invoke(app, ["config", "check", str(write(tmp_path, GOOD))])
    assert ok.exit_code == 0 and "OK" in ok.output
    bad = runner.invoke(app, ["config", "check", str(write(tmp_path, GOOD + "\n[bogus]\n"))])
    assert bad.exit_code == 2
    assert "bogus: unknown key" in bad.output


@pytest.mark.parametrize(("text", "seconds"), [(30, 30.0), ("90s", 90.0), ("15m", 900.0),
                                               ("2h", 7200.0), ("1.5d", 129600.0)])
def test_durations(text: object, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["soon", "-5", "5 weeks", True])
def test_bad_durations(text: object) -> None:
    with pytest.raises(ValueError, match="duration"):
        parse_duration(text)


def test_config_check_reads_the_secret_and_certificate_files(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CREDENTIALS_DIRECTORY", raising=False)
    missing = tmp_path / "nowhere"
    text = GOOD.replace('password_file = "mqtt-password"',
                        f'password_file = "{missing / "mqtt-password"}"')
    text += f'\n[mqtt.tls]\nca = "{missing / "ca.crt"}"\n'
    text += f'\n[influx]\nurl = "http://localhost:8428"\nbucket = "b"\n' \
            f'token_file = "{missing / "token"}"\n'
    result = CliRunner().invoke(app, ["config", "check", str(write(tmp_path, text))])
    assert result.exit_code == 2, result.output
    assert "3 problem(s)" in result.output
    for key in ("mqtt.password_file", "mqtt.tls.ca", "influx.token_file"):
        assert f"  {key}: cannot read" in result.output
    # the relative pin_file names a systemd credential: not checkable from a shell
    assert "pin_file" not in result.output


def test_config_check_reads_credentials_where_systemd_puts_them(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    creds = tmp_path / "credentials"
    creds.mkdir()
    (creds / "mqtt-password").write_text("s3cret\n", encoding="utf-8")
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(creds))
    result = CliRunner().invoke(app, ["config", "check", str(write(tmp_path, GOOD))])
    assert result.exit_code == 2
    assert "modem.quectel.pin_file: cannot read secret file" in result.output
    assert "mqtt.password_file" not in result.output
    (creds / "sim-pin").write_text("1234\n", encoding="utf-8")
    result = CliRunner().invoke(app, ["config", "check", str(write(tmp_path, GOOD))])
    assert result.exit_code == 0, result.output
    assert "1234" not in result.output and "s3cret" not in result.output


def test_run_refuses_to_start_with_every_unreadable_secret_listed(tmp_path: Path) -> None:
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if k != "CREDENTIALS_DIRECTORY"}
    text = GOOD.replace('/tmp/modemd-test', str(tmp_path / "state"))
    text += '\n[influx]\nurl = "http://localhost:8428"\nbucket = "b"\ntoken_file = "no-token"\n'
    proc = subprocess.run(
        [sys.executable, "-m", "modemd", "run", "-c", str(write(tmp_path, text))],
        capture_output=True, text=True, timeout=60, cwd=tmp_path, env=env, check=False)
    assert proc.returncode == 2, proc.stderr  # the unit's RestartPreventExitStatus=2
    for key in ("modem.quectel.pin_file", "mqtt.password_file", "influx.token_file"):
        assert key in proc.stderr, proc.stderr
    assert not (tmp_path / "state").exists()  # refused before touching the state dir
