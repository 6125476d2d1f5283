"""A long fuzz run of the AT parser, the AT response parsers and the PDU / text-mode decoders.

The fuzz tests in tests/ run a fixed budget on every test run (10,000 PDUs); this runs the
same properties, and a few more, with hypothesis for as long as asked, round-robin in batches,
and stops at the first failure with hypothesis' shrunk example. ``scripts/fuzz`` runs it.

Properties:

* decode_pdu (strict and lenient, with and without the SMSC field) raises nothing but
  DecodeError, on random bytes, mutated corpus PDUs and random hex text, and lenient agrees
  with strict where strict succeeds (tests/test_sms_fuzz.check_decodes);
* decode_text_record raises nothing but DecodeError;
* ATParser.feed never raises, and the same bytes give the same events however they are cut
  into chunks, with or without a command in flight;
* every response-line parser raises nothing but ATError subclasses.

    .venv/bin/python benchmarks/fuzz_long.py [--minutes 10] [--batch 2000] [--json out.json]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import random
import sys
import time
import traceback
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from modemd.at import responses
from modemd.at.parser import ATParser
from modemd.errors import ATError, DecodeError
from modemd.sms import SmsDeliver, SmsStatusReport, SmsSubmit, decode_text_record
from tests.test_sms_fuzz import HEADERS, SEEDS, check_decodes, mutate

BATCH = 2000
CALLS: Counter[str] = Counter()  # examples actually run, per property function


def batch_settings() -> settings:
    return settings(max_examples=BATCH, deadline=None, database=None, derandomize=False,
                    suppress_health_check=list(HealthCheck))


# --- the decoders -------------------------------------------------------------------------------


def random_bytes(data: bytes) -> None:
    CALLS["random_bytes"] += 1
    check_decodes(data)


def mutated_pdus(seed: bytes, rng: random.Random) -> None:
    CALLS["mutated_pdus"] += 1
    check_decodes(mutate(seed, rng))


def hex_strings(data: str) -> None:
    CALLS["hex_strings"] += 1
    check_decodes(data)


def text_records(header: str, body: str | None, status_report: bool) -> None:
    CALLS["text_records"] += 1
    try:
        record = decode_text_record(header, body, status_report=status_report)
    except DecodeError:
        return
    assert isinstance(record, SmsDeliver | SmsSubmit | SmsStatusReport)


# --- the AT layer -------------------------------------------------------------------------------

AT_LINES = [
    b"OK", b"ERROR", b"+CMS ERROR: 321", b"+CME ERROR: 10", b"> ", b"RING",
    b'+CMTI: "SM",3', b"+CMT: ,24", b"0791947106004034040D91947126", b"+CSQ: 20,99",
    b"+CMGL: 1,0,,24", b'+CPMS: "SM",1,30,"SM",1,30,"SM",1,30', b"+CREG: 0,1",
    b"AT+CMGR=3", b"+CMGR: 0,,24", b"^RSSI: 17", b"\xff\x00\xfe", b"\x1b[0m", b"",
]
at_streams = st.lists(
    st.one_of(
        st.sampled_from(AT_LINES).map(lambda line: line + b"\r\n"),
        st.sampled_from(AT_LINES),
        st.binary(max_size=30),
        st.sampled_from([b"\r", b"\n", b"\r\n", b"\x1a", b">"]),
    ),
    max_size=40,
).map(b"".join)
commands = st.one_of(
    st.none(),
    st.tuples(st.sampled_from(["AT+CMGR=3", "AT+CSQ", "AT+CMGL=4", "AT+CMGS=23", "ATI"]),
              st.sampled_from([(), ("+CMGR",), ("+CSQ",), ("+CMGL",), ("+CREG",)]),
              st.booleans()),
)


def events_of(data: bytes, cuts: list[int], command: Any) -> list[Any]:
    parser = ATParser()
    if command is not None:
        name, prefixes, prompt = command
        parser.command_started(name, response_prefixes=prefixes, expects_prompt=prompt)
    events: list[Any] = []
    start = 0
    for cut in [*sorted(c % (len(data) + 1) for c in cuts), len(data)]:
        events += parser.feed(data[start:cut])
        start = max(start, cut)
    return events


def at_parser_chunking(data: bytes, cuts: list[int], command: Any) -> None:
    CALLS["at_parser_chunking"] += 1
    whole = events_of(data, [], command)
    assert events_of(data, cuts, command) == whole
    one_by_one = events_of(data, list(range(len(data))), command)
    assert one_by_one == whole


LINE_PARSERS: list[tuple[str, Callable[[str], Any]]] = [
    ("parse_cmti", responses.parse_cmti),
    ("parse_cpms_test", responses.parse_cpms_test),
    ("parse_cpms_query", responses.parse_cpms_query),
    ("parse_cnmi_test", responses.parse_cnmi_test),
    ("parse_csq", responses.parse_csq),
    ("parse_creg", responses.parse_creg),
    ("parse_cops", responses.parse_cops),
    ("parse_cpin", responses.parse_cpin),
]
MULTI_LINE_PARSERS: list[tuple[str, Callable[[list[str]], Any]]] = [
    ("parse_cmgl_pdu", responses.parse_cmgl_pdu),
    ("parse_cmgr_pdu", responses.parse_cmgr_pdu),
    ("parse_cmgl_text", responses.parse_cmgl_text),
    ("parse_cmgr_text", responses.parse_cmgr_text),
]
line_text = st.one_of(
    st.text(max_size=80),
    st.text(alphabet='0123456789,"()+-: SMEMTRC', max_size=60),
    st.sampled_from([line.decode("latin-1") for line in AT_LINES]),
)


def response_parsers(line: str, lines: list[str]) -> None:
    CALLS["response_parsers"] += 1
    for _, parse in LINE_PARSERS:
        with contextlib.suppress(ATError):
            parse(line)
    for _, parse_many in MULTI_LINE_PARSERS:
        with contextlib.suppress(ATError):
            parse_many(lines)


TARGETS: list[tuple[str, Callable[[], None]]] = []
FUNCTIONS = ("random_bytes", "mutated_pdus", "hex_strings", "text_records",
             "at_parser_chunking", "response_parsers")  # in the order of TARGETS


def build_targets() -> None:
    s = batch_settings()
    TARGETS.clear()
    TARGETS.extend([
        ("decode_pdu: random bytes", s(given(data=st.binary(max_size=200))(random_bytes))),
        ("decode_pdu: mutated corpus PDUs",
         s(given(seed=st.sampled_from(SEEDS), rng=st.randoms(use_true_random=True))(
             mutated_pdus))),
        ("decode_pdu: hex text", s(given(
            data=st.text(alphabet="0123456789abcdefABCDEF \r\n\tx+", max_size=240))(
            hex_strings))),
        ("decode_text_record", s(given(
            header=st.one_of(st.text(max_size=120), st.builds(
                lambda h, cut, junk: h[:cut] + junk + h[cut:], st.sampled_from(HEADERS),
                st.integers(0, 120), st.text(alphabet='",0+/:', max_size=3))),
            body=st.one_of(st.none(), st.text(max_size=40)), status_report=st.booleans())(
            text_records))),
        ("ATParser: chunking", s(given(data=at_streams, cuts=st.lists(
            st.integers(0, 2000), max_size=8), command=commands)(at_parser_chunking))),
        ("AT response parsers", s(given(line=line_text, lines=st.lists(line_text, max_size=6))(
            response_parsers))),
    ])


def main(argv: list[str] | None = None) -> int:
    global BATCH
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--batch", type=int, default=2000, help="examples per round per target")
    parser.add_argument("--json", type=Path, help="also write the counts to this file")
    args = parser.parse_args(argv)
    BATCH = args.batch
    build_targets()
    deadline = time.monotonic() + args.minutes * 60
    counts = {name: 0 for name, _ in TARGETS}
    failure: dict[str, str] | None = None
    rounds = 0
    print(f"fuzzing {len(TARGETS)} targets for {args.minutes:g} min, {BATCH} examples a round",
          flush=True)
    while time.monotonic() < deadline and failure is None:
        rounds += 1
        for name, run in TARGETS:
            if time.monotonic() >= deadline:
                break
            try:
                run()
            except Exception as exc:
                failure = {"target": name, "error": repr(exc),
                           "traceback": traceback.format_exc()}
                break
        counts = dict(zip(counts, (CALLS[f] for f in FUNCTIONS), strict=True))
        print(f"round {rounds}: " + ", ".join(f"{n} {c:,}" for n, c in counts.items()),
              flush=True)
    result = {"minutes": args.minutes, "rounds": rounds, "examples": counts,
              "total": sum(counts.values()), "failure": failure}
    if args.json is not None:
        args.json.write_text(json.dumps(result, indent=2) + "\n", "utf-8")
    if failure is not None:
        print(f"FAILED in {failure['target']}:\n{failure['traceback']}", file=sys.stderr)
        return 1
    print(f"no failure in {sum(counts.values()):,} examples")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
