"""Throughput of the AT parser: lines per second for a 50-PDU +CMGL listing and a URC burst.

    .venv/bin/python benchmarks/bench_at_parser.py [--json PATH] [--repeat N]

Each case is fed whole, in 64-byte chunks (a USB modem's typical read size) and byte by byte;
the best of ``--repeat`` runs is reported. The listing case also times ``parse_cmgl_pdu``.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from modemd.at import ATParser, FinalResult, InfoLine, Urc, parse_cmgl_pdu

# A 160-character GSM-7 SMS-DELIVER (SMSC included), the longest single-part kind.
PDU = (
    "07917248010080F0240B917248001064F30000312070604220809F537AD84D0ECBC92061D8BDD681B2EFBA1C"
    "141E8FDF75377D0E0ACBCB20F71BC47EBBCF6539C8981C0641E3771BCE4E87DD741708CA2E87E76590589E76"
    "9F414922C80482CBDF6F33E86D06C9CBF334B9EC1E9741F43728ECCE83C4F2B07B8C06D1DF2079393CA6A7ED"
    "617A19947FD7E5A0F078FCAEBBE97317285A2FCBD3E5F90F04C3D96030D88C2693B900"
)


def cmgl_listing(count: int = 50) -> tuple[bytes, int]:
    body = b"".join(b"+CMGL: %d,1,,159\r\n%s\r\n" % (i, PDU.encode()) for i in range(count))
    return b"AT+CMGL=4\r\r\n" + body + b"\r\nOK\r\n", 2 * count + 1


def urc_burst(count: int = 500) -> tuple[bytes, int]:
    return b"".join(b'\r\n+CMTI: "ME",%d\r\n' % (i % 255) for i in range(count)), count


def chunks(data: bytes, size: int) -> list[bytes]:
    return [data[i : i + size] for i in range(0, len(data), size)]


def best_of(repeat: int, run: Callable[[], object]) -> float:
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - start)
    return best


def bench_feed(
    data: bytes,
    size: int | None,
    command: str | None,
    check: Callable[[list[object]], None],
    repeat: int,
) -> float:
    pieces = [data] if size is None else chunks(data, size)

    def run() -> None:
        parser = ATParser()
        if command is not None:
            parser.command_started(command, response_prefixes=("+CMGL",))
        events: list[object] = []
        for piece in pieces:
            events += parser.feed(piece)
        check(events)

    return best_of(repeat, run)


def main(argv: list[str] | None = None) -> int:
    args = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    args.add_argument("--json", metavar="PATH", help="also write the results as JSON here")
    args.add_argument("--repeat", type=int, default=20, help="runs per case (best is kept)")
    opts = args.parse_args(argv)

    listing, listing_lines = cmgl_listing()
    burst, burst_lines = urc_burst()

    def check_listing(events: list[object]) -> None:
        assert sum(isinstance(e, InfoLine) for e in events) == listing_lines - 1
        assert isinstance(events[-1], FinalResult)

    def check_burst(events: list[object]) -> None:
        assert sum(isinstance(e, Urc) for e in events) == burst_lines

    results: dict[str, dict[str, float]] = {}
    for name, data, lines, command, check in [
        ("cmgl_50_pdus", listing, listing_lines, "AT+CMGL=4", check_listing),
        ("urc_burst_500_cmti", burst, burst_lines, None, check_burst),
    ]:
        case: dict[str, float] = {"bytes": len(data), "lines": lines}
        for label, size in [("whole", None), ("chunks_64", 64), ("byte_by_byte", 1)]:
            repeat = max(1, opts.repeat // 10) if size == 1 else opts.repeat
            seconds = bench_feed(data, size, command, check, repeat)
            case[f"{label}_lines_per_s"] = round(lines / seconds)
        results[name] = case

    parser = ATParser()
    parser.command_started("AT+CMGL=4", response_prefixes=("+CMGL",))
    infos = [e.text for e in parser.feed(listing) if isinstance(e, InfoLine)]
    assert len(parse_cmgl_pdu(infos)) == 50
    seconds = best_of(opts.repeat, lambda: parse_cmgl_pdu(infos))
    results["cmgl_50_pdus"]["parse_cmgl_pdu_lines_per_s"] = round(len(infos) / seconds)

    for name, case in results.items():
        print(name)
        for key, value in case.items():
            print(f"  {key:32} {value:>12,.0f}")
    if opts.json:
        document = {
            "benchmark": "at_parser",
            "python": platform.python_version(),
            "machine": platform.machine(),
            "results": results,
        }
        Path(opts.json).write_text(json.dumps(document, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
