"""[[smpp]] in the config file: keys, durations, names, secrets."""

from __future__ import annotations

from pathlib import Path

import pytest

from modemd.config import config_from_dict
from modemd.errors import ConfigError


def bind(**extra: object) -> dict[str, object]:
    return {"name": "agg", "host": "smpp.example.net", "system_id": "modemd", **extra}


def test_defaults_and_durations() -> None:
    [smpp] = config_from_dict({"smpp": [bind(enquire_link="15s", reconnect_max="2m")]}).smpp
    assert (smpp.port, smpp.bind, smpp.tls, smpp.default_alphabet) == (2775, "receiver", False,
                                                                       "gsm7")
    assert (smpp.enquire_link, smpp.reconnect_max) == (15.0, 120.0)


@pytest.mark.parametrize(("extra", "where"), [
    ({"bind": "transmitter"}, "bind"),
    ({"default_alphabet": "utf8"}, "default_alphabet"),
    ({"system_id": "x" * 16}, "system_id"),
    ({"reconnect_min": 10, "reconnect_max": 1}, "smpp"),
    ({"typo": 1}, "typo"),
])
def test_bad_values_name_their_key(extra: dict[str, object], where: str) -> None:
    with pytest.raises(ConfigError) as err:
        config_from_dict({"smpp": [bind(**extra)]})
    assert any(where in key for key, _ in err.value.problems)


def test_a_bind_and_a_modem_cannot_share_a_name() -> None:
    with pytest.raises(ConfigError, match="named 'agg'"):
        config_from_dict({"modem": [{"name": "agg", "port": "/dev/ttyUSB2"}],
                          "smpp": [bind()]})


def test_password_file_is_checked_at_start_and_never_shown(tmp_path: Path) -> None:
    missing = config_from_dict({"smpp": [bind(password_file=str(tmp_path / "nope"))]})
    assert [k for k, _ in missing.file_problems()] == ["smpp.agg.password_file"]
    long = tmp_path / "long"
    long.write_text("123456789\n")
    too_long = config_from_dict({"smpp": [bind(password_file=str(long))]})
    [(key, message)] = too_long.file_problems()
    assert key == "smpp.agg.password_file" and "at most 8" in message
    assert "123456789" not in message
    good = tmp_path / "good"
    good.write_text("s3cret\n")
    config = config_from_dict({"smpp": [bind(password_file=str(good))]})
    assert config.file_problems() == []
    assert "s3cret" not in str(config.redacted())
