"""`modemd config check` beyond the schema: what cannot work, and secrets sent in clear."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from modemd.cli import app
from modemd.config import config_from_dict, redact_url
from modemd.config_checks import is_loopback, problems, warnings
from modemd.errors import ConfigError

MODEM = {"name": "m1", "port": "/dev/null"}


def check(tmp_path: Path, text: str) -> tuple[int, str]:
    path = tmp_path / "modemd.toml"
    path.write_text('[[modem]]\nname = "m1"\nport = "/dev/null"\n' + text, encoding="utf-8")
    result = CliRunner().invoke(app, ["config", "check", str(path)])
    return result.exit_code, result.output


@pytest.mark.parametrize("host", ["broker.example.com", "192.168.1.10", "10.0.0.2", "::ffff:1"])
def test_a_password_to_a_remote_broker_without_tls_is_a_warning(
        tmp_path: Path, host: str) -> None:
    (tmp_path / "pw").write_text("secret\n")
    code, out = check(tmp_path, f'[mqtt]\nhost = "{host}"\nusername = "gw"\n'
                                f'password_file = "{tmp_path / "pw"}"\n')
    assert code == 0, out
    assert f"warning: mqtt.tls: the MQTT password travels in clear to {host}" in out


@pytest.mark.parametrize("mqtt", [
    '[mqtt]\nhost = "localhost"\npassword_file = "{pw}"\n',
    '[mqtt]\nhost = "127.0.0.1"\npassword_file = "{pw}"\n',
    '[mqtt]\nhost = "::1"\npassword_file = "{pw}"\n',
    '[mqtt]\nhost = "broker.example.com"\npassword_file = "{pw}"\n[mqtt.tls]\n',
])
def test_no_clear_text_warning_for_loopback_or_tls(tmp_path: Path, mqtt: str) -> None:
    (tmp_path / "pw").write_text("secret\n")
    code, out = check(tmp_path, mqtt.format(pw=tmp_path / "pw"))
    assert code == 0, out
    assert "travels in clear" not in out


def test_the_token_to_a_remote_http_server_is_a_warning(tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MODEMD_INFLUX_TOKEN", "tok")
    cfg = config_from_dict({"modem": [MODEM], "influx": {"url": "http://tsdb.example.com:8086",
                                                        "bucket": "b"}})
    assert [k for k, _ in warnings(cfg)] == ["influx.url"]
    local = config_from_dict({"modem": [MODEM], "influx": {"url": "http://127.0.0.1:8086",
                                                          "bucket": "b"}})
    assert warnings(local) == []
    tls = config_from_dict({"modem": [MODEM], "influx": {"url": "https://tsdb.example.com",
                                                        "bucket": "b"}})
    assert warnings(tls) == []


def test_insecure_tls_is_a_warning() -> None:
    cfg = config_from_dict({"modem": [MODEM], "mqtt": {"host": "localhost",
                                                       "tls": {"insecure": True}}})
    assert [k for k, _ in warnings(cfg)] == ["mqtt.tls.insecure"]


def test_loopback() -> None:
    assert is_loopback("localhost") and is_loopback("127.0.0.53") and is_loopback("[::1]")
    assert is_loopback("::ffff:127.0.0.1")
    assert not is_loopback("localhost.example.com") and not is_loopback("10.0.0.1")


@pytest.mark.parametrize("topic", ["$SYS", "$share/g/modemd", "a/+/b", "a/#", "a\0b"])
def test_bad_base_topics_are_refused(topic: str) -> None:
    with pytest.raises(ConfigError) as err:
        config_from_dict({"modem": [MODEM], "mqtt": {"base_topic": topic}})
    assert err.value.problems[0][0] == "mqtt.base_topic"


def test_problems_of_a_config_that_loads() -> None:
    cfg = config_from_dict({
        "gateway": {"sweep_interval": 0, "health_interval": 0},
        "modem": [MODEM | {"command_timeout": 0}, {"name": "m2", "port": "/dev/null"}],
        "mqtt": {"host": " "},
        "influx": {"url": "http://127.0.0.1:8428", "bucket": ""},
    })
    assert sorted(k for k, _ in problems(cfg)) == [
        "gateway.health_interval", "gateway.sweep_interval", "influx.bucket",
        "modem['m1'].command_timeout", "modem['m2'].port", "mqtt.host"]
    assert [k for k, _ in problems(config_from_dict({}))] == ["modem"]


def test_a_field_with_two_types_in_one_measurement() -> None:
    def rule(name: str, level_type: str, measurement: str = "tank") -> dict[str, object]:
        return {"name": name, "format": "kv", "device_field": "ID", "measurement": measurement,
                "fields": {"ID": {"name": "id", "type": "string"},
                           "L": {"name": "level", "type": level_type}}}

    clash = config_from_dict({"modem": [MODEM],
                              "parser": [rule("a", "float"), rule("b", "int")]})
    ((key, message),) = problems(clash)
    assert key == "parser['b'].fields.level" and "'a' writes it as float" in message
    apart = config_from_dict({"modem": [MODEM], "parser": [rule("a", "float"),
                                                           rule("b", "int", "other")]})
    assert problems(apart) == []
    enum_and_string = config_from_dict({"modem": [MODEM], "parser": [
        rule("a", "string"),
        {**rule("b", "enum"), "fields": {"ID": {"name": "id", "type": "string"},
                                         "L": {"name": "level", "type": "enum",
                                               "values": {"1": "full"}}}}]})
    assert problems(enum_and_string) == []  # both are strings in the time series


@pytest.mark.parametrize(("url", "shown"), [
    ("https://admin:hunter2@tsdb.example.com:8086", "https://***@tsdb.example.com:8086"),
    ("http://tsdb.example.com/write?db=x&token=abc&p=pw", "http://tsdb.example.com/write?db=x"
                                                          "&token=***&p=***"),
    ("http://tsdb.example.com:8086", "http://tsdb.example.com:8086"),
])
def test_redact_url(url: str, shown: str) -> None:
    assert redact_url(url) == shown


def test_config_show_hides_credentials_inside_urls(tmp_path: Path) -> None:
    path = tmp_path / "modemd.toml"
    path.write_text('[[modem]]\nname = "m1"\nport = "/dev/null"\n[influx]\n'
                    'url = "https://admin:hunter2@tsdb.example.com/?token=s3cr3t"\nbucket = "b"\n')
    result = CliRunner().invoke(app, ["config", "show", "-c", str(path)])
    assert result.exit_code == 0, result.output
    assert "hunter2" not in result.output and "s3cr3t" not in result.output
    assert json.loads(result.output)["influx"]["url"] == "https://***@tsdb.example.com/?token=***"


def test_a_rule_writing_to_the_modem_measurement_must_keep_its_types() -> None:
    cfg = config_from_dict({"modem": [MODEM], "parser": [{
        "name": "a", "format": "kv", "device_field": "ID", "measurement": "modem",
        "fields": {"ID": {"name": "id", "type": "string"},
                   "R": {"name": "rssi_dbm", "type": "int"}}}]})
    ((key, message),) = problems(cfg)
    assert key == "parser['a'].fields.rssi_dbm" and "'modem health'" in message


def test_a_gateway_with_only_smpp_binds_receives_and_passes_the_check(tmp_path: Path) -> None:
    path = tmp_path / "modemd.toml"
    path.write_text(f"""
[gateway]
id = "gw1"
state_dir = "{tmp_path / 'state'}"

[[smpp]]
name = "agg"
host = "127.0.0.1"
system_id = "modemd"
""", encoding="utf-8")
    result = CliRunner().invoke(app, ["config", "check", str(path)])
    assert result.exit_code == 0, result.output
    assert "receive nothing" not in result.output
    nothing = config_from_dict({"gateway": {"state_dir": str(tmp_path / "state")}})
    assert any("receive nothing" in reason for _, reason in problems(nothing))
