"""Text from SMS reaches a terminal without the control characters it may carry."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from modemd.cli_support import json_terminal_safe, terminal_safe
from modemd.store import Store
from tests.helpers import REPO

HOSTILE = ("\x1b]0;owned\x07title \x1b[2J\x1b[1;1Hfake prompt$ \x9b31mred\x9b0m "
           "\u202eevil\u202c \u2066x\u2069 \x08\x08bs \x7f line1\nline2\r")
TERMINAL_ACTS_ON = ["\x1b", "\x07", "\x9b", "\u202e", "\u202c", "\u2066", "\u2069", "\x08",
                    "\x7f", "\r"]


@pytest.mark.parametrize("text", [HOSTILE, "\x00\x01\x1f", "\u0085\u009f", "\u200f\u061c"])
def test_terminal_safe_escapes_controls_and_bidi(text: str) -> None:
    shown = terminal_safe(text)
    assert shown.isprintable()
    assert not any(c in shown for c in [*TERMINAL_ACTS_ON, "\n"])


def test_terminal_safe_keeps_ordinary_text() -> None:
    for text in ("ID=PUMP01;BAT=3.71", "Grüße, 温度 21°C", "שלום", "😀 ok"):
        assert terminal_safe(text) == text


def test_json_stays_valid_and_equal() -> None:
    doc = {"text": HOSTILE}
    shown = json_terminal_safe(json.dumps(doc, ensure_ascii=False))
    assert not any(c in shown for c in TERMINAL_ACTS_ON)
    assert json.loads(shown) == doc


def test_messages_never_print_sms_control_characters(tmp_path: Path) -> None:
    state = tmp_path / "state"
    store = Store(state)
    with store.db.transaction() as conn:
        store.journal.record_message(
            conn, msg_id="a" * 32, modem="m1", sender="+4915112345678",
            sent_at="2026-11-25T10:00:00+01:00", status="ok", reason=None,
            document={"id": "a" * 32, "sender": "\x1b[2J+49151", "text": HOSTILE,
                      "sent_at": "2026-11-25T10:00:00+01:00"})
    store.close()
    cfg = tmp_path / "modemd.toml"
    cfg.write_text(f'[gateway]\nstate_dir = "{state}"\n[[modem]]\nname = "m1"\n'
                   'port = "/dev/null"\n')
    for extra in ([], ["--json"]):
        proc = subprocess.run([sys.executable, "-m", "modemd", "messages", "-c", str(cfg),
                               *extra], capture_output=True, text=True, timeout=60, cwd=REPO,
                              check=False)
        assert proc.returncode == 0, proc.stderr
        assert not any(c in proc.stdout for c in TERMINAL_ACTS_ON), repr(proc.stdout)
        if extra:
            assert json.loads(proc.stdout)[0]["message"]["text"] == HOSTILE
        else:
            assert "\\x1b]0;owned" in proc.stdout and "\\u202eevil" in proc.stdout
            assert "line1\\nline2" in proc.stdout
