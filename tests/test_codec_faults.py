"""The issue-11 PDU: an odd-length UCS-2 part of a multipart set. The codec raises DecodeError
only; lenient decoding recovers with a warning; the CLI shows it without a traceback."""

from __future__ import annotations

import subprocess
import sys

import pytest

from modemd.errors import DecodeError
from modemd.sms import SmsDeliver, assemble, decode_pdu
from tests.helpers import REPO

ODD_PART_1 = ("0791947101670000440D91945111325476F80008621103010010000F"
              "05000342020100490044003D005800")
ODD_PART_2 = ("0791947101670000440D91945111325476F8000862110301001000"
              "0C050003420202003100320033")


def test_strict_decoding_refuses_the_odd_part_with_a_decode_error() -> None:
    with pytest.raises(DecodeError, match="odd number of octets"):
        decode_pdu(ODD_PART_1, strict=True)


@pytest.mark.parametrize("order", [(ODD_PART_1,), (ODD_PART_1, ODD_PART_2),
                                   (ODD_PART_2, ODD_PART_1)])
def test_lenient_parts_join_without_raising(order: tuple[str, ...]) -> None:
    parts = [decode_pdu(pdu, strict=False) for pdu in order]
    assert all(isinstance(p, SmsDeliver) for p in parts)
    joined = assemble(parts)  # type: ignore[arg-type]
    assert joined.text == ("ID=X123" if len(order) == 2 else "ID=X")
    assert any("odd trailing octet" in w for p in parts for w in p.warnings)


def test_the_cli_decodes_it_leniently_without_a_traceback() -> None:
    done = subprocess.run([sys.executable, "-m", "modemd", "pdu", "decode", "--lenient",
                           ODD_PART_1], check=False, capture_output=True, text=True, cwd=REPO,
                          timeout=60)
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stdout + done.stderr
    assert "ID=X" in done.stdout and "odd trailing octet" in done.stdout
