"""How many PDUs per second modemd.sms.decode_pdu gets through.

Two workloads: the mix of decodable PDUs in the test corpus (tests/data/corpus), and one part
of a GSM 7 bit multipart message (153 characters after an 8-bit concatenation header), the
common case of a long notification. Usage::

    .venv/bin/python benchmarks/bench_pdu.py [--seconds 1.0] [--json results.json]
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from modemd.errors import DecodeError  # noqa: E402
from modemd.sms import SmsDeliver, decode_pdu, encode_deliver_parts  # noqa: E402

CORPUS = ROOT / "tests" / "data" / "corpus"
PDU_FILES = (
    "gammu/pdu_vectors.jsonl",
    "gammu/atgen_inline_pdus.jsonl",
    "python-gsmmodem/pdu_vectors.jsonl",
    "python-messaging/pdu_vectors.jsonl",
    "smspdudecoder/pdu_vectors.jsonl",
    "tutorials/pdu_vectors.jsonl",
)


def corpus_mix() -> list[bytes]:
    """Every corpus PDU that decodes strictly, as raw octets (what the journal stores)."""
    pdus: list[bytes] = []
    for name in PDU_FILES:
        for line in (CORPUS / name).read_text("utf-8").splitlines():
            hexed = json.loads(line)["pdu"]
            try:
                decode_pdu(hexed)
            except DecodeError:
                continue
            pdus.append(bytes.fromhex(hexed))
    return pdus


def multipart_part() -> bytes:
    text = "Pump 2 dry-run alarm at station North-7, pressure 0.4 bar, flow 0 l/min. " * 4
    parts = encode_deliver_parts(
        sender="+4917012345678",
        text=text,
        scts=datetime(2024, 5, 17, 9, 30, 5, tzinfo=UTC),
        smsc="+491722270000",
        reference=42,
    )
    return parts[0]


def rate(pdus: list[bytes], seconds: float) -> float:
    """Best of three timed runs, in PDUs per second."""
    decode: Callable[..., object] = decode_pdu
    best = 0.0
    for _ in range(3):
        count = 0
        start = time.perf_counter()
        deadline = start + seconds / 3
        while True:
            for pdu in pdus:
                decode(pdu)
            count += len(pdus)
            now = time.perf_counter()
            if now >= deadline:
                break
        best = max(best, count / (now - start))
    return best


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=1.5, help="time per workload")
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    args = parser.parse_args(argv)

    mix = corpus_mix()
    part = multipart_part()
    decoded = decode_pdu(part)
    if not isinstance(decoded, SmsDeliver) or len(decoded.text or "") != 153:
        raise SystemExit("the multipart workload is not a 153-character GSM 7 bit part")
    results = {
        "corpus_mix_pdus_per_s": round(rate(mix, args.seconds)),
        "corpus_mix_size": len(mix),
        "gsm7_multipart_part_pdus_per_s": round(rate([part], args.seconds)),
        "python": platform.python_version(),
        "machine": platform.machine(),
    }
    print(f"corpus mix ({len(mix)} PDUs): {results['corpus_mix_pdus_per_s']:>9,} PDUs/s")
    print(f"153-char GSM 7 bit part:   {results['gsm7_multipart_part_pdus_per_s']:>9,} PDUs/s")
    if args.json is not None:
        args.json.write_text(json.dumps(results, indent=2) + "\n", "utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
