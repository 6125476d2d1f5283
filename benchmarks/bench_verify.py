"""The cost of weighing one incoming SMS against 10,000 pending challenges.

    .venv/bin/python benchmarks/bench_verify.py [-n 10000] [--sms 2000]

Fills a real store (tmp dir) with ``-n`` pending challenges for ``-n`` different numbers
through Verifier.request (as MQTT requests arrive), then times Verifier.screen for ``--sms``
messages inside one store transaction each, as the pipeline calls it: an SMS that verifies,
an SMS with a wrong code, and an SMS from a number with no challenge (the common case).
Prints per-SMS microseconds (p50, p95) for each.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from modemd.store import Store
from modemd.verify import Verifier, VerifySettings

SECRET = b"bench-secret-0123456789abcdef"


def number(i: int) -> str:
    return f"+49151{i:08d}"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("-n", type=int, default=10_000)
    ap.add_argument("--sms", type=int, default=2_000, help="per case; 3 x sms <= n")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        store = Store(Path(tmp))
        verifier = Verifier(store, VerifySettings(secret=SECRET, result_topic="r",
                                                  max_ttl=86400, ttl=86400))
        t0 = time.perf_counter()
        for i in range(args.n):
            verifier.request(json.dumps({"id": f"c{i}", "number": number(i),
                                         "code": f"{i % 1_000_000:06d}"}).encode())
        fill = time.perf_counter() - t0
        with store.db.transaction() as conn:
            conn.execute("DELETE FROM outbox")
        scts = datetime.now(UTC).replace(microsecond=0)
        cases = {
            "verifies": lambda i: (number(i), f"my code {i % 1_000_000:06d}"),
            "wrong code": lambda i: (number(i), "my code 999999x"),
            "no challenge": lambda i: (f"+49160{i:08d}", "ID=PUMP01;BAT=3.71"),
        }
        print(f"{args.n} pending challenges stored in {fill:.2f} s "
              f"({fill / args.n * 1e3:.2f} ms each, one durable request transaction each)")
        for case, (name, make) in enumerate(cases.items()):
            times = []
            for k in range(args.sms):
                # each case its own challenges: a verified one is not pending any more
                i = (case * args.sms + k) * 7919 % args.n
                sender, text = make(i)
                start = time.perf_counter()
                with store.db.transaction() as conn:
                    verifier.screen(conn, msg_id=f"{name}-{k}", sender=sender,
                                    sender_kind="international", text=text,
                                    scts=scts.replace(year=scts.year + 1),
                                    received_at=time.time() + 1, document={"text": text})
                times.append(time.perf_counter() - start)
            times.sort()
            print(f"screen, {name:<12}: p50 {statistics.median(times) * 1e6:7.1f} us  "
                  f"p95 {times[int(len(times) * 0.95)] * 1e6:7.1f} us  (incl. its transaction)")
        store.close()


if __name__ == "__main__":
    main()
